"""benchmarks.profiling: operator, host-copy and shape-sync counts of one call."""
import paddle

from benchmarks.profiling import count_host_copies, profile_call


def test_counts_operators_host_copies_and_shape_syncs():
    x = paddle.arange(12, dtype="float32").reshape([3, 4])

    def call():
        total = (x * 2).sum()               # scale, sum
        picked = paddle.nonzero(x > 5)      # full, greater_than, nonzero (a GPU sync)
        return total.numpy(), float(total), bool(picked.shape[0] > 0)

    result, profile = profile_call(call)
    assert result[1] == 132.0
    assert profile.host_copies == 2         # .numpy() and float(); picked.shape needs no copy
    assert profile.shape_syncs == 1
    assert profile.syncs == 3
    assert profile.by_operator["nonzero"] == 1 and profile.by_operator["sum"] == 1
    assert profile.operators == sum(profile.by_operator.values()) >= 4


def test_host_copy_counter_restores_tensor_methods():
    plain = paddle.Tensor.numpy
    with count_host_copies() as copies:
        paddle.ones([2]).numpy()
        paddle.ones([1]).item()
    assert copies[0] == 2
    assert paddle.Tensor.numpy is plain

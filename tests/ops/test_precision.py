import numpy as np
import paddle
import pytest

from ppassign.ops.precision import float32_inputs


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_tensors_become_float32(dtype):
    low = paddle.to_tensor(np.float32([[0.5, 1.25]])).astype(dtype)
    (out,) = float32_inputs(low)
    assert out.dtype == paddle.float32
    np.testing.assert_array_equal(out.numpy(), [[0.5, 1.25]])


def test_other_inputs_are_returned_as_they_are():
    f32, i64 = paddle.ones([2], "float32"), paddle.ones([2], "int64")
    out = float32_inputs(f32, i64, None, 3)
    assert out[0] is f32 and out[1] is i64 and out[2] is None and out[3] == 3

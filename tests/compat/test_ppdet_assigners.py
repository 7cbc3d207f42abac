"""compat.ppdet_assigners: the installed ppdet's assigner arity and fixes, found by running them."""
import paddle
import pytest

import ppassign  # noqa: F401  (installs the shims)
from ppassign import compat
from ppassign.assigners import ATSSAssigner, TaskAlignedAssigner
from ppassign.compat import ppdet_assigners
from ppassign.compat.ppdet_assigners import AssignerBehaviour, _call_atss, _call_tal, probe


def _fake_forward(num_outputs, empty_outputs, fails_on_int32=False):
    def forward(self, *args):
        labels = args[2]
        if fails_on_int32 and labels.dtype == paddle.int32:
            raise TypeError("(InvalidType) Type promotion only support calculations between floating-point numbers")
        return (labels,) * (num_outputs if labels.shape[1] else empty_outputs)
    return forward


def _fake_call(forward, num_gt, label_dtype):
    return forward(None, None, None, paddle.zeros([1, num_gt, 1], label_dtype))


def test_probe_counts_values_with_and_without_ground_truth():
    assert probe(_fake_call, _fake_forward(4, 3)) == AssignerBehaviour(4, 3, False)
    assert probe(_fake_call, _fake_forward(3, 3)) == AssignerBehaviour(3, 3, False)


def test_probe_finds_the_int32_label_failure():
    assert probe(_fake_call, _fake_forward(3, 3, fails_on_int32=True)) == AssignerBehaviour(3, 3, True)


def test_a_behaviour_needs_a_fix_only_for_int32_failures_or_an_arity_that_depends_on_the_input():
    assert not AssignerBehaviour(3, 3, False).needs_fix
    assert AssignerBehaviour(3, 3, True).needs_fix and AssignerBehaviour(4, 3, False).needs_fix


def test_probe_of_an_assigner_that_always_fails_names_it():
    def forward(self, *args):
        raise ValueError("broken")
    with pytest.raises(RuntimeError, match="forward fails on a one-box problem"):
        probe(_fake_call, forward)


def test_fixed_forward_casts_int32_labels_and_back_only_when_needed():
    seen = []

    def forward(self, a, b, labels):
        seen.append(labels.dtype)
        return labels + 1, labels, labels
    labels = paddle.ones([1, 2, 1], "int32")
    fixed = ppdet_assigners._fixed_assigner_forward(forward, 2, AssignerBehaviour(3, 3, True))
    out = fixed(None, None, None, labels)
    assert seen == [paddle.int64] and out[0].dtype == paddle.int32 and int(out[0].sum()) == 4
    plain = ppdet_assigners._fixed_assigner_forward(forward, 2, AssignerBehaviour(3, 3, False))
    plain(None, None, None, labels)
    assert seen[-1] == paddle.int32


def test_fixed_forward_pads_an_empty_batch_to_four_values():
    def forward(self, a, b, labels):
        return paddle.zeros([2, 6], "int32"), paddle.zeros([2, 6, 4]), paddle.zeros([2, 6, 5])
    fixed = ppdet_assigners._fixed_assigner_forward(forward, 2, AssignerBehaviour(4, 3, False))
    out = fixed(None, None, None, paddle.zeros([2, 0, 1], "int32"))
    assert len(out) == 4 and out[3].shape == [2, 0, 6]


@pytest.mark.parametrize("num_gt", [1, 0])
def test_installed_ppdet_assigners_take_reader_labels_and_return_what_its_heads_unpack(num_gt):
    """ppdet's reader gives int32 labels; after the fix both assigners run and return the arity compat says."""
    from ppdet.modeling.assigners.atss_assigner import ATSSAssigner as PPDetATSS
    from ppdet.modeling.assigners.task_aligned_assigner import TaskAlignedAssigner as PPDetTAL
    expected = 4 if compat.ASSIGNER_RETURNS_MASK_POSITIVE else 3
    for call, cls in ((_call_atss, PPDetATSS), (_call_tal, PPDetTAL)):
        out = call(cls.forward, num_gt, "int32")
        assert len(out) == expected and out[0].dtype == paddle.int32, cls.__name__


def test_arity_follows_the_installed_ppdet_not_its_version_string():
    assert compat.ASSIGNER_RETURNS_MASK_POSITIVE == (compat.BEHAVIOURS["TaskAlignedAssigner"].num_outputs == 4)


@pytest.mark.parametrize("num_gt", [1, 0])
def test_ppassign_assigners_return_as_many_values_as_the_installed_ppdet(num_gt):
    """The bug a source install hit: a 4-value return into heads that unpack 3."""
    def call_atss(forward, n, dtype):
        return _call_atss(lambda self, *a: ATSSAssigner(topk=2, num_classes=2)(*a), n, dtype)

    def call_tal(forward, n, dtype):
        return _call_tal(lambda self, *a: TaskAlignedAssigner(topk=2)(*a), n, dtype)
    for call, name in ((call_atss, "ATSSAssigner"), (call_tal, "TaskAlignedAssigner")):
        assert len(call(None, num_gt, "int32")) == compat.BEHAVIOURS[name].num_outputs, name

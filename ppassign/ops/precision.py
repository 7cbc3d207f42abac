"""Input precision of the assigners: what mixed-precision (AMP) training hands them is computed in float32."""
import paddle

LOW_PRECISION = (paddle.float16, paddle.bfloat16)


def float32_inputs(*tensors):
    """The tensors with float16 / bfloat16 ones cast to float32 (others, and None, unchanged).

    Paddle's CPU kernels for gather / subtract / clip have no float16 (or bfloat16) versions, and float16 IoUs
    can exceed 1 or underflow to 0 before a log, so every assigner computes in float32 whatever the head's AMP
    level; its float outputs are then float32. A float32 call dispatches no extra operator.
    """
    return tuple(t.astype("float32") if isinstance(t, paddle.Tensor) and t.dtype in LOW_PRECISION else t
                 for t in tensors)

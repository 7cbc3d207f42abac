"""Every version / platform shim ppassign applies, in one place.

paddledet 2.6.0 (the newest PaddleDetection wheel) predates Paddle 3. The paths users hit that break on
Paddle 3.x are listed in ../shared/PLATFORM.md; each shim below names the failure it fixes. Nothing outside
this module patches Paddle or ppdet.

`apply()` is called once by ``import ppassign``; it is idempotent.
"""
import logging

import paddle
import ppdet

logger = logging.getLogger("ppassign")


def _version_tuple(text):
    out = []
    for part in str(text).split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits) if digits else 0)
    return tuple(out)


PADDLE_VERSION = _version_tuple(paddle.__version__)
PPDET_VERSION = _version_tuple(getattr(ppdet, "__version__", "2.6.0"))

# PLATFORM.md #2: ppdet 2.6.x heads (PPYOLOEHead, PicoHeadV2, TOODHead) unpack four values from an assigner
# (labels, bboxes, scores, mask_positive); PaddleDetection 2.7+ heads unpack three.
ASSIGNER_RETURNS_MASK_POSITIVE = PPDET_VERSION < (2, 7, 0)

_APPLIED = set()


def _once(name):
    """True the first time `name` is seen; shims use it to stay idempotent."""
    if name in _APPLIED:
        return False
    _APPLIED.add(name)
    return True


def apply():
    """Apply every shim (idempotent). Called by ``import ppassign``."""
    return sorted(_APPLIED)

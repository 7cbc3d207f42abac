"""What one call costs a GPU user, measured on any device: operators dispatched and host round-trips.

On a GPU every dygraph operator costs host time to launch whatever its size, and every device-to-host copy
(``.numpy()``, ``.item()``, ``bool(t)``, ``int(t)`` ...) waits for the device to drain. Both are counted here
on CPU just as they would happen on a GPU:

- ``operators``: Paddle operators dispatched, from ``paddle.profiler`` (the "Operator" calls of its summary);
- ``host_copies``: explicit tensor-to-host conversions, counted by wrapping ``paddle.Tensor``'s methods;
- ``shape_syncs``: operators whose output size depends on the data (``nonzero``, ``masked_select``, boolean
  indexing, ``unique``): on a GPU each one also copies a count to the host before it can return.
"""
import contextlib
from dataclasses import dataclass, field

import paddle

# Operators whose output shape depends on values: on a GPU they synchronise to learn the size.
SHAPE_SYNC_OPS = ("nonzero", "masked_select", "where_index", "unique", "unique_consecutive", "index_select_strided")
# paddle.Tensor methods that bring values to the host.
_HOST_METHODS = ("numpy", "item", "tolist", "__bool__", "__int__", "__float__", "__index__", "__array__")


@dataclass
class CallProfile:
    """Counts for one call (see module docstring)."""
    operators: int = 0
    host_copies: int = 0
    shape_syncs: int = 0
    by_operator: dict = field(default_factory=dict)

    @property
    def syncs(self):
        """Host copies plus data-dependent-shape operators: what waits for a GPU."""
        return self.host_copies + self.shape_syncs


@contextlib.contextmanager
def count_host_copies():
    """Count tensor-to-host conversions inside the block; yields a one-element list holding the count."""
    counter = [0]
    depth = [0]
    originals = {name: getattr(paddle.Tensor, name) for name in _HOST_METHODS if hasattr(paddle.Tensor, name)}

    def wrap(method):
        def counted(self, *args, **kwargs):
            if depth[0] == 0:
                counter[0] += 1
            depth[0] += 1
            try:
                return method(self, *args, **kwargs)
            finally:
                depth[0] -= 1
        return counted

    for name, method in originals.items():
        setattr(paddle.Tensor, name, wrap(method))
    try:
        yield counter
    finally:
        for name, method in originals.items():
            setattr(paddle.Tensor, name, method)


def _operator_calls(prof):
    """{operator name: calls} from a stopped paddle.profiler.Profiler."""
    from paddle.profiler import profiler_statistic
    data = profiler_statistic.StatisticData(prof.profiler_result.get_data(), prof.profiler_result.get_extra_info())
    calls = {}
    for name, item in data.event_summary.items.items():
        short = name.replace(" dygraph", "").strip()
        calls[short] = calls.get(short, 0) + item.call
    return calls


def profile_call(fn, *args, **kwargs):
    """Run ``fn(*args, **kwargs)`` once and count what it dispatched.

    Returns:
        (result of fn, CallProfile).
    """
    from paddle import profiler
    prof = profiler.Profiler(targets=[profiler.ProfilerTarget.CPU], on_trace_ready=lambda _: None)
    with count_host_copies() as copies:
        prof.start()
        try:
            result = fn(*args, **kwargs)
        finally:
            prof.step()
            prof.stop()
    calls = _operator_calls(prof)
    shape_syncs = sum(n for name, n in calls.items() if name in SHAPE_SYNC_OPS)
    return result, CallProfile(operators=sum(calls.values()), host_copies=copies[0], shape_syncs=shape_syncs,
                               by_operator=calls)

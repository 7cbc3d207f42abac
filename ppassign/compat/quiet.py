"""Known-harmless start-up noise of Paddle and ppdet, filtered where it starts (each is listed in docs/platform.md).

Only messages that say nothing about the user's run are dropped, each matched by its exact text.
"""
import contextlib
import io
import sys
import warnings

# Paddle's C++-extension helper warns at `import paddle` that ccache is missing; ppassign compiles no extension.
CCACHE_WARNING = "No ccache found"
# ppdet's multi-object-tracking code (PP-Tracking and its MOT metrics, not detection) prints these at
# `import ppdet` when numba / motmetrics (tracking-only dependencies) are not installed.
IMPORT_LINES = ("Warning: Unable to use numba in PP-Tracking", "Warning: Unable to use MCMOT metric",
                "Warning: Unable to use MOT metric", "Warning: Unable to use JDE/FairMOT/ByteTrack")


def filter_import_warnings():
    """Ignore the ccache UserWarning; call before the first `import paddle` to have an effect."""
    warnings.filterwarnings("ignore", message=CCACHE_WARNING, category=UserWarning)


@contextlib.contextmanager
def without_stdout_lines(prefixes):
    """Run the block with stdout captured, then write back every line that starts with none of `prefixes`."""
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            yield
    finally:
        kept = [line for line in buffer.getvalue().splitlines(keepends=True) if not line.startswith(tuple(prefixes))]
        if kept:
            sys.stdout.write("".join(kept))
            sys.stdout.flush()

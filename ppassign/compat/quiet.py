"""Known-harmless start-up noise of Paddle and ppdet, filtered where it starts (each is listed in docs/platform.md).

Only messages that say nothing about the user's run are dropped, each matched by its exact text.
"""
import contextlib
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


class LineFilter:
    """A text stream that forwards whole lines to `stream`, except lines starting with one of `prefixes`.

    It stays usable after the block that installed it: ppdet's loggers keep the ``sys.stdout`` they saw at
    import (their handlers are made then), and keep printing through this filter to the real stream.
    """

    def __init__(self, stream, prefixes):
        self.stream, self.prefixes, self.pending = stream, tuple(prefixes), ""

    def write(self, text):
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            if not line.startswith(self.prefixes):
                self.stream.write(line + "\n")
        return len(text)

    def flush(self):
        # a partial line goes out unless it may still become a filtered one
        if self.pending and not any(p.startswith(self.pending) or self.pending.startswith(p) for p in self.prefixes):
            self.stream.write(self.pending)
            self.pending = ""
        self.stream.flush()

    def __getattr__(self, name):  # encoding, isatty, fileno, ... of the real stream
        return getattr(self.stream, name)


@contextlib.contextmanager
def without_stdout_lines(prefixes):
    """Run the block with ``sys.stdout`` behind a `LineFilter` that drops lines starting with `prefixes`."""
    real = sys.stdout
    sys.stdout = LineFilter(real, prefixes)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stdout = real

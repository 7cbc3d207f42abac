"""Known-harmless noise of Paddle, ppdet and pycocotools, filtered where it starts (each is listed in
docs/platform.md).

Only messages that say nothing about the user's run, or that the tools say in one line of their own, are dropped,
each matched by its exact text:

- at import (always): Paddle's ccache warning, ppdet's tracking-only "Warning: Unable to use ..." lines, and the
  type-promotion warning Paddle prints while ppassign probes ppdet's assigners;
- while a tool runs (`quiet_run`, unless ``--verbose``): pycocotools' progress lines and summary table (the tools
  print one line per evaluation), ppdet's per-evaluation log lines, and Paddle's PIR warning at export
  (`without_native_stderr_lines` around the export).

With ``PPASSIGN_VERBOSE=1`` in the environment (or `set_verbose(True)`, what ``--verbose`` does) nothing is
dropped; the environment variable also brings back what is dropped at import.
"""
import contextlib
import logging
import os
import sys
import tempfile
import warnings

VERBOSE_ENV = "PPASSIGN_VERBOSE"
_VERBOSE = [os.environ.get(VERBOSE_ENV, "") not in ("", "0")]

# Paddle's C++-extension helper warns at `import paddle` that ccache is missing; ppassign compiles no extension.
CCACHE_WARNING = "No ccache found"
# ppdet's multi-object-tracking code (PP-Tracking and its MOT metrics, not detection) prints these at
# `import ppdet` when numba / motmetrics (tracking-only dependencies) are not installed.
IMPORT_LINES = ("Warning: Unable to use numba in PP-Tracking", "Warning: Unable to use MCMOT metric",
                "Warning: Unable to use MOT metric", "Warning: Unable to use JDE/FairMOT/ByteTrack")
# Paddle's C++ warning (glog, written to file descriptor 2) at the first mixed-dtype call of each operator,
# e.g. "W1207 06:58:43.765893  8870 dygraph_functions.cc:123772] Got different data type, run type promotion
# automatically, this may cause data type been changed." (multiply's spells it "got").
TYPE_PROMOTION = "ot different data type, run type promotion automatically"
# Paddle 3.3's glog warning when a Python API passes its `out=` argument (``paddle.add`` always does, with None)
# while a PIR program is built: every export of a model that adds tensors. It says nothing about the model.
PIR_OUT_TENSOR = "Paddle static graph(PIR) not support input out tensor for now"
# What pycocotools prints (to stdout) for every annotation file it loads and every evaluation, 3-4 loads per
# evaluation in ppdet, and its 12-line summary (the tools print the numbers in one line of their own).
PYCOCOTOOLS_LINES = ("loading annotations into memory...", "Done (t=", "creating index...", "index created!",
                     "Loading and preparing results...", "DONE (t=", "Running per image evaluation...",
                     "Evaluate annotation type *", "Accumulating evaluation results...",
                     " Average Precision  (AP) @[", " Average Recall     (AR) @[")
# ppdet's log lines that every evaluation repeats, by logger: what the tools' own line says, or nothing new.
PPDET_LOG_LINES = {
    "ppdet.metrics.coco_utils": ("Start evaluate...",),
    "ppdet.metrics.metrics": ("The bbox result is saved to ",),
    "ppdet.engine": ("Total sample number: ", "Best test bbox ap is "),
}


def verbose():
    """True when nothing is to be dropped (``--verbose`` / ``PPASSIGN_VERBOSE=1``)."""
    return _VERBOSE[0]


def set_verbose(on):
    _VERBOSE[0] = bool(on)


def filter_import_warnings():
    """Ignore the ccache UserWarning; call before the first `import paddle` to have an effect."""
    if not verbose():
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
    if verbose():
        yield
        return
    real = sys.stdout
    sys.stdout = LineFilter(real, prefixes)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stdout = real


@contextlib.contextmanager
def without_native_stderr_lines(substrings):
    """Run the block with file descriptor 2 (where Paddle's C++ logging writes, beside ``sys.stderr``) going to
    a temporary file; when it ends, write back to stderr every line that contains none of `substrings`.

    For short blocks only (an import-time probe, an export): what the block writes to stderr appears when it
    ends.
    """
    if verbose():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode("utf-8", "replace").splitlines(keepends=True)
                    if not any(s in line for s in substrings)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


class _MessageFilter(logging.Filter):
    """Drops log records whose message starts with one of `prefixes`."""

    def __init__(self, prefixes):
        super().__init__()
        self.prefixes = tuple(prefixes)

    def filter(self, record):
        return not record.getMessage().startswith(self.prefixes)


@contextlib.contextmanager
def quiet_run():
    """Run a tool's job with pycocotools' lines (`PYCOCOTOOLS_LINES`) and ppdet's per-evaluation log lines
    (`PPDET_LOG_LINES`) dropped; progress lines with their ETA stay. Does nothing when `verbose`."""
    if verbose():
        yield
        return
    installed = [(logging.getLogger(name), _MessageFilter(prefixes)) for name, prefixes in PPDET_LOG_LINES.items()]
    for logger, message_filter in installed:
        logger.addFilter(message_filter)
    try:
        with without_stdout_lines(PYCOCOTOOLS_LINES):
            yield
    finally:
        for logger, message_filter in installed:
            logger.removeFilter(message_filter)

"""The error tools/compare.py reports as one line (exit status 2)."""


class CompareError(Exception):
    """A user-facing error (a run's files missing or made otherwise, a budget that differs, a failed run)."""

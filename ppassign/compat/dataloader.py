"""Paddle's DataLoader: an exception while loading a batch ends the run instead of hanging it.

Seen on Paddle 3.3.1: when a reader raises in the loader thread of a single-process DataLoader (ppdet's
``worker_num: 0``; e.g. ``np.stack`` of images of different sizes in ppdet's collate when the TrainReader has no
resize), the thread prints its traceback and dies without closing the queue, and the training loop then waits
on that queue forever. With worker processes Paddle kills the queue, but the main thread only sees "Blocking
queue is killed because the data reader raises an exception".

`fix_dataloader_errors` makes the loader thread keep its exception and kill the queue, and the iterator raise
`DataLoadingError` (with the reader's error as its message and cause) in the thread that asked for the batch.
"""
from .applied import once


class DataLoadingError(RuntimeError):
    """An exception raised while a DataLoader built a batch; ``__cause__`` is the original exception."""


def _keep_error_and_kill_queue(thread_loop):
    def wrapped(self, *args, **kwargs):
        try:
            return thread_loop(self, *args, **kwargs)
        except Exception as error:  # noqa: BLE001  (handed to the consumer below)
            self._ppassign_error = error
            self._exit_thread_unexpectedly()
    wrapped.__wrapped__ = thread_loop
    return wrapped


def _one_line(error):
    """"ValueError: <last line of the message>"; a worker's error arrives with its traceback as the message."""
    lines = str(error).strip().splitlines()
    last = lines[-1].strip() if lines else ""
    name = type(error).__name__
    return last if last.startswith(name + ":") else f"{name}: {last}".rstrip(": ")


def _raise_loader_error(next_batch):
    def wrapped(self):
        try:
            return next_batch(self)
        except Exception as error:
            cause = getattr(self, "_ppassign_error", None)
            if cause is None or isinstance(error, StopIteration):
                raise
            raise DataLoadingError(_one_line(cause)) from cause
    wrapped.__wrapped__ = next_batch
    return wrapped


def fix_dataloader_errors():
    """Install the two wrappers on both of Paddle's DataLoader iterators (idempotent)."""
    if not once("dataloader_errors"):
        return
    from paddle.io.dataloader import dataloader_iter
    for cls in (dataloader_iter._DataLoaderIterSingleProcess, dataloader_iter._DataLoaderIterMultiProcess):
        cls._thread_loop = _keep_error_and_kill_queue(cls._thread_loop)
        cls.__next__ = _raise_loader_error(cls.__next__)

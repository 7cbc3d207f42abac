"""compat.dataloader: a reader exception reaches the consumer as DataLoadingError instead of hanging it.

Each case runs in a child process, so that a regression shows as a timeout, not a hung suite.
"""
import os
import subprocess
import sys
import textwrap

import pytest

from ppassign.compat.dataloader import DataLoadingError, _raise_loader_error

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import paddle
    import ppassign
    from ppassign.compat import DataLoadingError

    class Sizes(paddle.io.Dataset):
        def __len__(self):
            return 8
        def __getitem__(self, i):
            return np.zeros([3, 8 + i % 2, 8], "float32")     # two image sizes

    def collate(samples):
        return [np.stack(samples)]                             # what ppdet's collate does

    loader = paddle.io.DataLoader(Sizes(), batch_size=4, num_workers=int(sys.argv[1]), collate_fn=collate)
    try:
        for batch in loader:
            pass
    except DataLoadingError as e:
        print("DataLoadingError:", e)
        sys.exit(3)
""")


@pytest.mark.parametrize("num_workers", [0, 1])
def test_collate_error_ends_the_loop_with_the_readers_message(num_workers):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(num_workers)], cwd=REPO, capture_output=True,
                          text=True, timeout=180, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "DataLoadingError: ValueError: all input arrays must have the same shape" in proc.stdout, proc.stdout


def test_stop_iteration_and_errors_without_a_loader_error_pass_through():
    class Iterator:
        _ppassign_error = None

        def __init__(self, error):
            self.error = error

        def next_batch(self):
            raise self.error
    for error in (StopIteration(), KeyError("k")):
        with pytest.raises(type(error)):
            _raise_loader_error(Iterator.next_batch)(Iterator(error))
    failed = Iterator(RuntimeError("Blocking queue is killed"))
    failed._ppassign_error = ValueError("first line\nlast line")
    with pytest.raises(DataLoadingError, match="ValueError: last line") as info:
        _raise_loader_error(Iterator.next_batch)(failed)
    assert info.value.__cause__ is failed._ppassign_error

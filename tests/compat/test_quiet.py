"""compat.quiet: known-harmless start-up noise is dropped, and nothing else."""
import os
import subprocess
import sys

from ppassign.compat import quiet

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_only_lines_with_the_given_prefixes_are_dropped(capsys):
    with quiet.without_stdout_lines(("Warning: noise",)):
        print("kept 1")
        print("Warning: noise, please install it")
        print("kept 2 Warning: noise")
    assert capsys.readouterr().out == "kept 1\nkept 2 Warning: noise\n"


def test_a_logger_made_inside_the_block_still_prints_after_it(capsys):
    """ppdet's loggers keep the sys.stdout of `import ppdet`: their lines must not vanish afterwards."""
    import logging
    with quiet.without_stdout_lines(("Warning: noise",)):
        handler = logging.StreamHandler(sys.stdout)
    logger = logging.getLogger("ppassign.test_quiet")
    logger.addHandler(handler)
    try:
        logger.warning("eta: 0:00:01")
    finally:
        logger.removeHandler(handler)
    assert "eta: 0:00:01\n" in capsys.readouterr().out


def test_lines_are_written_back_when_the_block_raises(capsys):
    try:
        with quiet.without_stdout_lines(("x",)):
            print("before the error")
            raise KeyError("k")
    except KeyError:
        pass
    assert capsys.readouterr().out == "before the error\n"


def test_import_ppassign_prints_none_of_the_known_noise():
    proc = subprocess.run([sys.executable, "-c", "import ppassign"], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    output = proc.stdout + proc.stderr
    assert quiet.CCACHE_WARNING not in output
    assert not any(line in output for line in quiet.IMPORT_LINES), output

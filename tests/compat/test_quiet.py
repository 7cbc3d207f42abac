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


def test_tool_help_prints_nothing_on_stderr():
    """No Paddle type-promotion warning (ppassign's import-time probe of ppdet's assigners makes one)."""
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "train.py"), "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0 and "--verbose" in proc.stdout
    assert proc.stderr == ""


def test_native_stderr_lines_with_the_given_text_are_dropped(capfd):
    with quiet.without_native_stderr_lines(("run type promotion",)):
        os.write(2, b"W1207 x.cc:1] Got different data type, run type promotion automatically\n")
        os.write(2, b"kept from C++\n")
    assert capfd.readouterr().err == "kept from C++\n"


def test_verbose_drops_nothing(capfd, monkeypatch):
    monkeypatch.setattr(quiet, "_VERBOSE", [True])
    with quiet.without_native_stderr_lines(("noise",)):
        os.write(2, b"noise\n")
    with quiet.quiet_run():
        print("loading annotations into memory...")
    out = capfd.readouterr()
    assert out.err == "noise\n" and out.out == "loading annotations into memory...\n"


def test_quiet_run_drops_pycocotools_lines_and_ppdets_per_evaluation_log_lines(capsys, caplog):
    import logging
    caplog.set_level(logging.INFO, logger="ppdet.engine")
    with quiet.quiet_run():
        print("loading annotations into memory...")
        print(" Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.001")
        print("ppassign: eval after epoch 1/1")
        logging.getLogger("ppdet.engine").info("Best test bbox ap is 0.001.")
        logging.getLogger("ppdet.engine").info("Epoch: [0] [0/2] loss: 1.0 eta: 0:00:01")
    assert capsys.readouterr().out == "ppassign: eval after epoch 1/1\n"
    assert [r.getMessage() for r in caplog.records] == ["Epoch: [0] [0/2] loss: 1.0 eta: 0:00:01"]
    logging.getLogger("ppdet.engine").info("Best test bbox ap is 0.002.")  # filters are gone after the block
    assert caplog.records[-1].getMessage() == "Best test bbox ap is 0.002."

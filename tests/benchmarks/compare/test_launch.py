"""benchmarks.compare: a method's run config, its training subprocess, stop-stalled and resume."""
import os

import pytest
import yaml

from benchmarks import compare


def test_derived_config_takes_the_learning_rate_of_the_variant():
    budget = compare.default_budget()
    assert yaml.safe_load(compare.derived_config("autoassign_sgd", budget))["LearningRate"]["base_lr"] == 0.005
    assert yaml.safe_load(compare.derived_config("autoassign_noobj", budget))["LearningRate"]["base_lr"] == 0.002
    assert compare.parse_methods("dw_ablation") == ["dw_norefine_posonly", "dw_norefine_negonly"]
    assert "autoassign_sgd" not in compare.parse_methods("all")


FAKE_TRAIN = """\
import sys, time
box = sys.argv[1]  # 'flat' or 'falling'
for i in range({steps}):
    value = 0.93 if box == "flat" else 0.93 * (1 - i / 400)
    print(f"ppdet.engine INFO: Epoch: [0] [{{i}}/{steps}] loss_box: {{value:.4f}} loss: 2.0 batch_cost: 0.01",
          flush=True)
    time.sleep({pause})
"""


def _fake_trainer(tmp_path, monkeypatch, box, steps, pause):
    """Make train_method run, instead of tools/train.py, a script logging `steps` lines of a flat/falling loss_box."""
    script = tmp_path / "fake_train.py"
    script.write_text(FAKE_TRAIN.format(steps=steps, pause=pause))
    monkeypatch.setattr(compare, "TRAIN_TOOL", str(script))
    popen = compare.subprocess.Popen
    monkeypatch.setattr(compare.subprocess, "Popen", lambda cmd, **kw: popen([cmd[0], cmd[1], box], **kw))


def test_train_method_stops_a_run_whose_box_loss_stays_flat(tmp_path, monkeypatch):
    _fake_trainer(tmp_path, monkeypatch, "flat", steps=3000, pause=0.005)
    run = compare.train_method("fcos", compare.default_budget(), str(tmp_path), 0, str(tmp_path / "ds"),
                               stop_stalled=50, poll_seconds=0.2)
    assert not run["ok"] and run["stopped"].startswith("regression stalled (loss_box) at iteration")
    assert 50 <= compare.logged_iterations(run["parsed"]) < 3000


def test_train_method_lets_a_run_with_falling_box_loss_finish(tmp_path, monkeypatch):
    _fake_trainer(tmp_path, monkeypatch, "falling", steps=200, pause=0.002)
    run = compare.train_method("fcos", compare.default_budget(), str(tmp_path), 0, str(tmp_path / "ds"),
                               stop_stalled=50, poll_seconds=0.1)
    assert run["ok"] and "stopped" not in run and compare.logged_iterations(run["parsed"]) == 200


def _touch(folder, *names):
    os.makedirs(folder, exist_ok=True)
    for name in names:
        open(os.path.join(folder, name), "w").close()


def test_resume_point_takes_the_latest_epoch_checkpoint_with_its_optimizer_state(tmp_path):
    assert compare.resume_point(str(tmp_path / "missing")) is None
    folder = str(tmp_path / "config")
    _touch(folder, "best_model.pdparams", "best_model.pdopt", "1.pdparams", "1.pdopt", "3.pdparams", "3.pdopt",
           "11.pdparams", "11.pdopt", "13.pdparams")  # 13 has no .pdopt: not resumable
    assert compare.resume_point(str(tmp_path)) == ("epoch", os.path.join(folder, "11"), 12)
    _touch(folder, "model_final.pdparams", "model_final.pdopt")
    assert compare.resume_point(str(tmp_path)) == ("finished", os.path.join(folder, "model_final"))


RESUME_TRAIN = """\
import sys
start = int(sys.argv[sys.argv.index("-r") + 1].rsplit("/", 1)[1]) + 1 if "-r" in sys.argv else 0
for epoch in range(start, 3):
    print(f"ppdet.engine INFO: Epoch: [{epoch}] [0/1] loss_box: 0.5 loss: 2.0 batch_cost: 0.01", flush=True)
print("args:", " ".join(sys.argv[1:]))
"""


def _resume_trainer(tmp_path, monkeypatch):
    """train_method runs, instead of tools/train.py, a script that logs epochs from its -r checkpoint on."""
    script = tmp_path / "fake_train.py"
    script.write_text(RESUME_TRAIN)
    monkeypatch.setattr(compare, "TRAIN_TOOL", str(script))


def test_train_method_resumes_from_the_latest_checkpoint_and_appends_to_the_log(tmp_path, monkeypatch):
    _resume_trainer(tmp_path, monkeypatch)
    budget, out, ds = compare.default_budget(), str(tmp_path / "run"), str(tmp_path / "ds")
    first = compare.train_method("fcos", budget, out, 0, ds)
    assert first["ok"] and [e for e, *_ in first["parsed"]["loss"]] == [0, 1, 2]
    _touch(os.path.join(out, "fcos", "ckpt", "config"), "0.pdparams", "0.pdopt")  # as if killed in epoch 1
    run = compare.train_method("fcos", budget, out, 0, ds, resume=True)
    with open(run["log"]) as f:
        text = f.read()
    assert f"compare: resumed after epoch 1 from {os.path.join(out, 'fcos', 'ckpt', 'config', '0')}" in text
    assert text.rstrip().endswith(f"-r {os.path.join(out, 'fcos', 'ckpt', 'config', '0')}")
    assert run["ok"] and [e for e, *_ in run["parsed"]["loss"]] == [0, 1, 2] and run["parsed"]["resumed"] == [1]


def test_train_method_reads_a_finished_run_instead_of_training_it_again(tmp_path, monkeypatch):
    _resume_trainer(tmp_path, monkeypatch)
    budget, out, ds = compare.default_budget(), str(tmp_path / "run"), str(tmp_path / "ds")
    compare.train_method("fcos", budget, out, 0, ds)
    _touch(os.path.join(out, "fcos", "ckpt", "config"), "model_final.pdparams", "model_final.pdopt")
    monkeypatch.setattr(compare.subprocess, "Popen", None)  # training again would fail
    run = compare.train_method("fcos", budget, out, 0, ds, resume=True)
    assert run["ok"] and len(run["parsed"]["loss"]) == 3


def test_train_method_refuses_to_resume_a_run_made_with_other_arguments(tmp_path, monkeypatch):
    _resume_trainer(tmp_path, monkeypatch)
    budget, out, ds = compare.default_budget(), str(tmp_path / "run"), str(tmp_path / "ds")
    compare.train_method("fcos", budget, out, 0, ds)
    with pytest.raises(compare.CompareError, match="other arguments \\('0' then, '1' now\\)"):
        compare.train_method("fcos", budget, out, 1, ds, resume=True)
    with pytest.raises(compare.CompareError, match="config.yml was written for another budget"):
        compare.train_method("fcos", dict(budget, epochs=9), out, 0, ds, resume=True)

"""benchmarks.compare.launch: a method's run config, its training subprocess, stop-stalled and resume.

The trainings here run tests/compare_cases.py's stand-in for tools/train.py (it writes metrics.json as the
trainer does), so they take a fraction of a second.
"""
import json
import os

import pytest
import yaml

from benchmarks.compare import launch, records
from benchmarks.compare.errors import CompareError
from compare_cases import fake_trainer


def test_check_budget_rejects_a_bad_budget():
    budget = launch.default_budget()
    budget["epochs"] = 0
    with pytest.raises(ValueError, match="epochs"):
        launch.check_budget(budget)


def test_derived_config_takes_the_learning_rate_of_the_variant():
    budget = launch.default_budget()
    assert yaml.safe_load(launch.derived_config("autoassign_sgd", budget))["LearningRate"]["base_lr"] == 0.005
    assert yaml.safe_load(launch.derived_config("autoassign_noobj", budget))["LearningRate"]["base_lr"] == 0.002


def test_train_method_stops_a_run_whose_box_loss_stays_flat(tmp_path, monkeypatch):
    fake_trainer(tmp_path, monkeypatch, "flat", steps=3000, pause=0.005)
    run = launch.train_method("fcos", launch.default_budget(), str(tmp_path), 0, str(tmp_path / "ds"),
                              stop_stalled=50, poll_seconds=0.2)
    assert not run["ok"] and run["stopped"].startswith("regression stalled (loss_box) at iteration")
    assert 50 <= records.logged_iterations(run["metrics"]) < 3000


def test_train_method_lets_a_run_with_falling_box_loss_finish(tmp_path, monkeypatch):
    fake_trainer(tmp_path, monkeypatch, "falling", steps=200, pause=0.002)
    run = launch.train_method("fcos", launch.default_budget(), str(tmp_path), 0, str(tmp_path / "ds"),
                              stop_stalled=50, poll_seconds=0.1)
    assert run["ok"] and "stopped" not in run and records.logged_iterations(run["metrics"]) == 200


def test_train_method_names_the_error_line_of_a_failed_run(tmp_path, monkeypatch):
    fake_trainer(tmp_path, monkeypatch, "diverged")
    run = launch.train_method("fcos", launch.default_budget(), str(tmp_path), 0, str(tmp_path / "ds"))
    assert not run["ok"] and run["returncode"] == 2 and "stopped" not in run
    assert run["error"] == "training diverged: the loss is nan at 2 logged steps in a row (epoch 0, step 1)"


def test_failure_reason_is_none_without_an_error_line(tmp_path):
    (tmp_path / "train.log").write_text("Traceback (most recent call last):\n  ...\nRuntimeError: boom\n")
    assert launch.failure_reason(str(tmp_path / "train.log")) is None
    assert launch.failure_reason(str(tmp_path / "missing.log")) is None


def test_stall_reason_waits_for_the_iterations_then_names_the_terms():
    metrics = {"iterations": 40, "regression": {"loss_box": [0.9] * 10}}
    assert launch.stall_reason(metrics, 50) is None
    assert launch.stall_reason(dict(metrics, iterations=60), 50) == "regression stalled (loss_box) at iteration 60"
    assert launch.stall_reason({"iterations": 60, "regression": {"loss_box": [1.0] * 5 + [0.5] * 5}}, 50) is None


def _touch(folder, *names):
    os.makedirs(folder, exist_ok=True)
    for name in names:
        open(os.path.join(folder, name), "w").close()


def test_resume_point_takes_the_latest_epoch_checkpoint_with_its_optimizer_state(tmp_path):
    assert launch.resume_point(str(tmp_path / "missing")) is None
    folder = str(tmp_path / "config")
    _touch(folder, "best_model.pdparams", "best_model.pdopt", "1.pdparams", "1.pdopt", "3.pdparams", "3.pdopt",
           "11.pdparams", "11.pdopt", "13.pdparams")  # 13 has no .pdopt: not resumable
    assert launch.resume_point(str(tmp_path)) == ("epoch", os.path.join(folder, "11"), 12)
    _touch(folder, "model_final.pdparams", "model_final.pdopt")
    assert launch.resume_point(str(tmp_path)) == ("finished", os.path.join(folder, "model_final"))


def test_train_method_resumes_from_the_latest_checkpoint_and_appends_to_the_log(tmp_path, monkeypatch):
    fake_trainer(tmp_path, monkeypatch, epochs=3)
    budget, out, ds = launch.default_budget(), str(tmp_path / "run"), str(tmp_path / "ds")
    first = launch.train_method("fcos", budget, out, 0, ds)
    assert first["ok"] and [e for e, *_ in first["metrics"]["loss"]] == [0, 1, 2] and first["resumed"] == []
    _touch(os.path.join(out, "fcos", "ckpt", "config"), "0.pdparams", "0.pdopt")  # as if killed in epoch 1
    run = launch.train_method("fcos", budget, out, 0, ds, resume=True)
    with open(run["log"]) as f:
        text = f.read()
    assert f"compare: resumed after epoch 1 from {os.path.join(out, 'fcos', 'ckpt', 'config', '0')}" in text
    assert text.rstrip().endswith(f"-r {os.path.join(out, 'fcos', 'ckpt', 'config', '0')}")
    assert run["ok"] and [e for e, *_ in run["metrics"]["loss"]] == [0, 1, 2] and run["resumed"] == [1]
    assert [e for e, _ in run["metrics"]["evals"]] == [0, 1, 2]


def test_train_method_reads_a_finished_run_instead_of_training_it_again(tmp_path, monkeypatch):
    fake_trainer(tmp_path, monkeypatch, epochs=3)
    budget, out, ds = launch.default_budget(), str(tmp_path / "run"), str(tmp_path / "ds")
    launch.train_method("fcos", budget, out, 0, ds)
    _touch(os.path.join(out, "fcos", "ckpt", "config"), "model_final.pdparams", "model_final.pdopt")
    monkeypatch.setattr(launch.subprocess, "Popen", None)  # training again would fail
    run = launch.train_method("fcos", budget, out, 0, ds, resume=True)
    assert run["ok"] and len(run["metrics"]["loss"]) == 3


def test_train_method_refuses_to_resume_a_run_made_with_other_arguments(tmp_path, monkeypatch):
    fake_trainer(tmp_path, monkeypatch, epochs=3)
    budget, out, ds = launch.default_budget(), str(tmp_path / "run"), str(tmp_path / "ds")
    launch.train_method("fcos", budget, out, 0, ds)
    with pytest.raises(CompareError, match="other arguments \\('0' then, '1' now\\)"):
        launch.train_method("fcos", budget, out, 1, ds, resume=True)
    with pytest.raises(CompareError, match="config.yml was written for another budget"):
        launch.train_method("fcos", dict(budget, epochs=9), out, 0, ds, resume=True)


def test_train_method_keeps_the_command_and_the_commit_of_the_checkout(tmp_path, monkeypatch):
    fake_trainer(tmp_path, monkeypatch)
    monkeypatch.setattr(launch, "current_commit", lambda repo=None: "abc1234")
    run = launch.train_method("fcos", launch.default_budget(), str(tmp_path / "run"), 0, str(tmp_path / "ds"))
    with open(tmp_path / "run" / "fcos" / "launch.json") as f:
        saved = json.load(f)
    assert saved["command"][:2] == ["-c", run["config"]] and "--seed" in saved["command"]
    assert saved["commit"] == run["commit"] == "abc1234" and saved["resumed"] == []


def test_resumed_run_at_another_commit_names_both(tmp_path, monkeypatch):
    fake_trainer(tmp_path, monkeypatch, epochs=3)
    budget, out, ds = launch.default_budget(), str(tmp_path / "run"), str(tmp_path / "ds")
    monkeypatch.setattr(launch, "current_commit", lambda repo=None: "aaaaaaa")
    launch.train_method("fcos", budget, out, 0, ds)
    _touch(os.path.join(out, "fcos", "ckpt", "config"), "0.pdparams", "0.pdopt")
    monkeypatch.setattr(launch, "current_commit", lambda repo=None: "bbbbbbb")
    assert launch.train_method("fcos", budget, out, 0, ds, resume=True)["commit"] == "aaaaaaa+bbbbbbb"


def test_current_commit_is_the_short_sha_of_this_checkout_or_none_outside_git(tmp_path):
    sha = launch.current_commit()
    assert sha is None or len(sha.split("-")[0]) >= 7
    assert launch.current_commit(str(tmp_path)) is None

"""metrics.json (ppassign.engine.record): its schema, rewritten as training goes, and what a resumed run keeps."""
import json
import os
import subprocess
import sys
import types

import pytest

import ppassign  # noqa: F401
from ppassign.engine import record, train
from ppassign.engine.common import PipelineError
from ppassign.ops.validation import NonFiniteError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(REPO, "configs", "quickstart", "quickstart_tal.yml")
TOP_KEYS = {"config", "seed", "epochs", "steps_per_epoch", "train", "evals", "seconds", "finished",
            "resumed_after_epoch"}


def tiny(dataset_dir, save_dir, epochs):
    """The quickstart model, narrowed, on 8 train / 4 val images: 2 steps per epoch, each one logged."""
    return [f"TrainDataset.dataset_dir={dataset_dir}", "TrainDataset.num_images=8",
            f"EvalDataset.dataset_dir={dataset_dir}", "EvalDataset.num_images=4", f"epoch={epochs}",
            "snapshot_epoch=1", "TrainReader.batch_size=4", "EvalReader.batch_size=4", "width_mult=0.125",
            "log_iter=1", "PPYOLOEHead.nms.score_threshold=0.001", f"save_dir={save_dir}"]


def read(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@pytest.mark.slow
def test_record_of_a_training_has_the_schema(tmp_path):
    result = train.train(CONFIG, tiny(tmp_path / "ds", tmp_path / "out", 2), eval=True, seed=3)
    path = result["record"]
    assert path == os.path.join(os.path.dirname(result["weights"]), "metrics.json")
    rec = read(path)
    assert set(rec) == TOP_KEYS
    assert rec["config"] == CONFIG and rec["seed"] == 3 and rec["epochs"] == 2 and rec["steps_per_epoch"] == 2
    assert [(e["epoch"], e["step"], e["iteration"]) for e in rec["train"]] == [(0, 0, 1), (0, 1, 2), (1, 0, 3),
                                                                               (1, 1, 4)]
    for entry in rec["train"]:
        assert set(entry) == {"epoch", "step", "iteration", "loss", "terms", "batch_cost"}
        assert isinstance(entry["loss"], float) and entry["batch_cost"] > 0
        assert set(entry["terms"]) == {"loss_cls", "loss_iou", "loss_dfl", "loss_l1"}
    assert [(e["epoch"], e["iteration"]) for e in rec["evals"]] == [(1, 2), (2, 4)]
    assert all(len(e["bbox"]) == 12 and all(isinstance(v, float) for v in e["bbox"]) for e in rec["evals"])
    assert rec["finished"] is True and rec["seconds"] > 0 and rec["resumed_after_epoch"] is None


def train_tool(*args, cwd):
    """tools/train.py in a subprocess (a resumed optimizer state needs the parameter names of a fresh process)."""
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "train.py"), *args], cwd=cwd,
                          env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]


@pytest.mark.slow
def test_resumed_run_keeps_the_records_up_to_its_checkpoint_and_drops_the_rest(tmp_path):
    overrides = tiny(tmp_path / "ds", tmp_path / "out", 2)
    train_tool("-c", CONFIG, "--eval", "-o", *overrides, cwd=tmp_path)
    run_dir = tmp_path / "out" / "quickstart_tal"
    first = read(run_dir / "metrics.json")
    assert [e["epoch"] for e in first["evals"]] == [1, 2] and first["resumed_after_epoch"] is None
    # resume from the checkpoint of epoch 1 and train to 3: epoch 2's records are made again, not kept twice
    train_tool("-c", CONFIG, "--eval", "-r", str(run_dir / "0"), "-o", *overrides, "epoch=3", cwd=tmp_path)
    rec = read(run_dir / "metrics.json")
    assert rec["resumed_after_epoch"] == 1 and rec["epochs"] == 3 and rec["finished"] is True
    assert [e["iteration"] for e in rec["train"]] == [1, 2, 3, 4, 5, 6]  # epoch 1 once, from the resumed run
    assert [e["epoch"] for e in rec["evals"]] == [1, 2, 3]


class _Stats:
    def __init__(self, loss="1.500000"):
        self.loss = loss

    def get(self):
        return {"loss": self.loss, "loss_cls": "0.500000"}


def _fake_trainer(start_epoch=0):
    cfg = types.SimpleNamespace(epoch=2, log_iter=2)
    return types.SimpleNamespace(cfg=cfg, start_epoch=start_epoch, _metrics=[])


def _step(epoch, step, loss="1.500000"):
    return {"mode": "train", "epoch_id": epoch, "step_id": step, "training_staus": _Stats(loss),
            "batch_time": types.SimpleNamespace(avg=0.25)}


def test_record_is_rewritten_at_every_logged_step_and_marked_finished_at_the_end(tmp_path):
    path = str(tmp_path / "run" / "metrics.json")
    callback = record.TrainingRecord(_fake_trainer(), path, "c.yml", seed=None)
    callback.on_train_begin({"steps_per_epoch": 4})
    assert read(path)["train"] == [] and read(path)["finished"] is False and read(path)["seconds"] is None
    callback.on_step_end(_step(0, 0))
    assert read(path)["train"] == [{"epoch": 0, "step": 0, "iteration": 1, "loss": 1.5,
                                    "terms": {"loss_cls": 0.5}, "batch_cost": 0.25}]
    callback.on_step_end(_step(0, 1))  # not a logged step (log_iter 2)
    callback.on_step_end(_step(0, 2))
    assert [e["iteration"] for e in read(path)["train"]] == [1, 3]
    callback.on_train_end({})
    assert read(path)["finished"] is True and isinstance(read(path)["seconds"], float)


def test_evaluation_without_detections_is_twelve_zeros_marked_as_such():
    entry = record.eval_entry({}, epoch=2, iteration=8)
    assert entry == {"epoch": 2, "iteration": 8, "bbox": [0.0] * 12, "no_detections": True}
    assert "no_detections" not in record.eval_entry({"bbox": [0.5] * 12}, epoch=2, iteration=8)


def test_resume_without_an_earlier_record_starts_an_empty_one(tmp_path):
    path = str(tmp_path / "metrics.json")
    callback = record.TrainingRecord(_fake_trainer(start_epoch=3), path, "c.yml", resume=True)
    callback.on_train_begin({"steps_per_epoch": 4})
    rec = read(path)
    assert rec["resumed_after_epoch"] == 3 and rec["train"] == [] and rec["evals"] == []


def _entry(iteration, loss):
    return {"epoch": 0, "step": iteration - 1, "iteration": iteration, "loss": loss, "terms": {"loss_cls": loss},
            "batch_cost": 0.1}


def test_loss_not_finite_at_two_logged_steps_in_a_row_stops_training(tmp_path):
    path = str(tmp_path / "metrics.json")
    callback = record.TrainingRecord(_fake_trainer(), path, "c.yml")
    callback.on_train_begin({"steps_per_epoch": 4})
    callback.on_step_end(_step(0, 0))
    callback.on_step_end(_step(0, 2, loss="nan"))
    with pytest.raises(PipelineError, match=r"training diverged: the loss is nan at 2 logged steps in a row "
                                            r"\(last logged step: epoch 2, iteration 5"):
        callback.on_step_end(_step(1, 0, loss="nan"))
    assert [e["iteration"] for e in read(path)["train"]] == [1, 3, 5]  # the record keeps the steps it stopped at


@pytest.mark.parametrize("losses", [[float("nan")], [1.0, float("nan")], [float("nan"), 1.0],
                                    [float("inf"), 1.0, float("nan")]])
def test_loss_not_finite_once_does_not_stop_training(losses):
    record.check_diverged([_entry(i + 1, loss) for i, loss in enumerate(losses)], "metrics.json")


def test_inf_loss_counts_as_diverged():
    with pytest.raises(PipelineError, match="the loss is inf"):
        record.check_diverged([_entry(1, float("inf")), _entry(2, float("inf"))], "metrics.json")


def test_non_finite_predictions_are_a_diverged_run_and_other_inputs_bad_input(tmp_path):
    callback = record.TrainingRecord(_fake_trainer(), str(tmp_path / "metrics.json"), "c.yml")
    callback.on_train_begin({"steps_per_epoch": 4})
    with pytest.raises(PipelineError, match=r"training diverged: the model's pred_bboxes are NaN or inf \(before "
                                            r"the first logged step\)"):
        with record.diverged_as_pipeline_errors(callback):
            raise NonFiniteError("pred_bboxes")
    with pytest.raises(PipelineError, match="^during training: gt_bboxes contains NaN or inf values$"):
        with record.diverged_as_pipeline_errors(callback):
            raise NonFiniteError("gt_bboxes")
    with pytest.raises(ValueError, match="^other$"):
        with record.diverged_as_pipeline_errors(callback):
            raise ValueError("other")


@pytest.mark.slow
def test_diverging_training_stops_with_one_line_and_exit_status_2(tmp_path):
    overrides = tiny(tmp_path / "ds", tmp_path / "out", 3) + ["LearningRate.base_lr=1e12"]
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "train.py"), "-c", CONFIG, "-o", *overrides],
                          cwd=tmp_path, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: training diverged: ")

"""``metrics.json``: what a training run did, next to its weights, rewritten as it goes.

A harness reads a run from this file instead of parsing the log. Schema::

    {"config": str, "seed": int | null, "epochs": int, "steps_per_epoch": int,
     "train": [{"epoch": int (0-based), "step": int (0-based, in the epoch), "iteration": int (iterations done,
                this one included), "loss": float, "terms": {name: float}, "batch_cost": float (s)}],
     "evals": [{"epoch": int (epochs done), "iteration": int (iterations done), "bbox": [12 COCOeval stats]}
               (+ "no_detections": true when the model detected nothing: 12 zeros)],
     "seconds": float | null (training wall time, set when it ends), "finished": bool,
     "resumed_after_epoch": int | null}

``train`` has one entry per step that ppdet logs (every ``log_iter``), with the values it logs (each loss term's
median over the last ``log_iter`` steps, the mean time per step over them). A run resumed from the checkpoint
of epoch N keeps what the file holds up to epoch N and drops the rest (the resumed run trains it again).

A run whose logged loss is not finite at `DIVERGED_LOGS` logged steps in a row has diverged (its weights are
NaN or inf from then on): training stops there with a `common.PipelineError` instead of spending the rest of
its schedule on a model that can only evaluate to nothing. One non-finite log alone does not stop it (with
mixed precision a single overflowing step is skipped by the loss scaler and makes that window's median NaN).
An assigner that refuses NaN or inf predictions (a `NonFiniteError`) stops it the same way
(`diverged_as_pipeline_errors`).
"""
import contextlib
import json
import math
import os
import time

import paddle
from ppdet.engine.callbacks import Callback

from ..ops.validation import NonFiniteError
from .common import PipelineError, coco_summary, format_summary

RECORD_FILE = "metrics.json"
DIVERGED_LOGS = 2


def read_record(path):
    """The record in `path`, or None when there is none (or it cannot be read)."""
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def write_record(path, record):
    """Write `record` to `path` atomically (a reader never sees half a file)."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1)
    os.replace(tmp, path)


def eval_entry(results, epoch, iteration):
    """One ``evals`` entry from ppdet's metric results ({'bbox': [12 stats]}; no 'bbox' when nothing was detected)."""
    summary = coco_summary(results)
    entry = {"epoch": epoch, "iteration": iteration, "bbox": summary["stats"]}
    if summary.get("no_detections"):
        entry["no_detections"] = True
    return entry


def check_diverged(train, path, logs=DIVERGED_LOGS):
    """PipelineError when the last `logs` entries of a record's ``train`` list all have a non-finite loss.

    Args:
        train (list[dict]): the record's ``train`` entries so far (module docstring).
        path (str): the record's file, named in the message.
    """
    last = train[-logs:]
    if len(last) < logs or any(math.isfinite(e["loss"]) for e in last):
        return
    raise PipelineError(diverged_message(f"the loss is {last[-1]['loss']:g} at {logs} logged steps in a row",
                                         train, path))


def diverged_message(what, train, path):
    """"training diverged: <what> (<where the record's last logged step was, its loss terms>); ..." """
    if train:
        entry = train[-1]
        terms = ", ".join(f"{name} {value:g}" for name, value in entry["terms"].items() if name.startswith("loss"))
        where = (f"last logged step: epoch {entry['epoch'] + 1}, iteration {entry['iteration']}, loss "
                 f"{entry['loss']:g}" + (f" ({terms})" if terms else ""))
    else:
        where = "before the first logged step"
    return (f"training diverged: {what} ({where}); stopped. Lower the learning rate (LearningRate.base_lr) or "
            f"lengthen its warm-up, and check the annotations; the steps logged so far are in {path}")


@contextlib.contextmanager
def diverged_as_pipeline_errors(record):
    """Turn an assigner's NonFiniteError about the model's predictions (a ``pred_*`` argument) raised during
    training into the PipelineError of a diverged run; NaN or inf in other inputs (boxes, anchors) is named as
    bad input."""
    try:
        yield
    except NonFiniteError as e:
        if e.name.startswith("pred"):
            raise PipelineError(diverged_message(f"the model's {e.name} are NaN or inf", record.record["train"],
                                                 record.path)) from None
        raise PipelineError(f"during training: {e}") from None


class TrainingRecord(Callback):
    """ppdet callback that keeps `path` (``<checkpoint dir>/metrics.json``) up to date during ``Trainer.train``.

    Also prints one line per evaluation (``ppassign: eval after epoch E/N: COCO bbox mAP ...``), and stops
    training with a PipelineError once the loss has diverged (`check_diverged`).
    """

    def __init__(self, trainer, path, config, seed=None, resume=False):
        super().__init__(trainer)
        self.path, self.resume = path, resume
        self.record = {"config": config, "seed": None if seed is None else int(seed),
                       "epochs": int(trainer.cfg.epoch), "steps_per_epoch": 0, "train": [], "evals": [],
                       "seconds": None, "finished": False, "resumed_after_epoch": None}
        self.writes = paddle.distributed.get_rank() == 0
        self.started = None
        self.last_summary = None  # coco_summary of the latest evaluation of this process

    def save(self):
        if self.writes:
            write_record(self.path, self.record)

    def on_train_begin(self, status):
        self.started = time.time()
        self.record["steps_per_epoch"] = int(status["steps_per_epoch"])
        start = int(self.model.start_epoch)
        if self.resume:
            self.record["resumed_after_epoch"] = start
            earlier = read_record(self.path) or {}
            self.record["train"] = [e for e in earlier.get("train", ()) if e.get("epoch", start) < start]
            self.record["evals"] = [e for e in earlier.get("evals", ()) if e.get("epoch", start + 1) <= start]
        if self.writes:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        self.save()

    def on_step_end(self, status):
        if status.get("mode") != "train" or status["step_id"] % self.model.cfg.log_iter != 0:
            return
        stats = status["training_staus"].get()  # what ppdet's LogPrinter logs: medians over the window
        values = {name: float(value) for name, value in stats.items()}
        epoch, step = int(status["epoch_id"]), int(status["step_id"])
        self.record["train"].append({
            "epoch": epoch, "step": step, "iteration": epoch * self.record["steps_per_epoch"] + step + 1,
            "loss": values.pop("loss", float("nan")), "terms": values,
            "batch_cost": round(float(status["batch_time"].avg), 6)})
        self.save()
        check_diverged(self.record["train"], self.path)

    def on_epoch_end(self, status):
        if status.get("mode") != "eval":
            return
        results = {}
        for metric in self.model._metrics:
            results.update({k: [float(v) for v in value] for k, value in metric.get_results().items()
                            if k == "bbox"})
        epoch = int(status["epoch_id"]) + 1
        entry = eval_entry(results, epoch, epoch * self.record["steps_per_epoch"])
        self.record["evals"].append(entry)
        self.save()
        self.last_summary = coco_summary(results)
        if self.writes:
            print(f"ppassign: eval after epoch {epoch}/{self.record['epochs']} ({status.get('sample_num', 0)} "
                  f"images): {format_summary(self.last_summary)}", flush=True)

    def on_train_end(self, status):
        self.record["seconds"] = round(time.time() - self.started, 3)
        self.record["finished"] = True
        self.save()


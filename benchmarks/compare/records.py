"""A run's metrics, read from the ``metrics.json`` tools/train.py writes next to its weights, and its table row.

The record's schema is ppassign.engine.record's. A run's metrics, as the rest of the package uses them::

    {"loss": [(epoch, step, steps_per_epoch, loss)] per logged step (epoch and step 0-based),
     "batch_cost": [seconds per step] per logged step, "iterations": iterations done (the last logged step's),
     "evals": [(epoch, [12 COCO stats])] per evaluation, after the epoch with that 0-based index (an evaluation
              without detections: 12 zeros),
     "seconds": training wall time or None (a run that did not finish), "finished": bool,
     "regression": {term: [value per logged step]} for the REGRESSION_TERMS the head logs}
"""
import json

from .errors import CompareError

# The file tools/train.py writes in the checkpoint folder (ppassign.engine.record.RECORD_FILE; not imported, so
# that reading results needs neither Paddle nor ppdet).
METRICS_FILE = "metrics.json"
# COCOeval.stats order (pycocotools): AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl.
COCO_STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
# The box-regression terms the heads log (FCOS loss_box, PP-YOLOE loss_iou, DW loss_loc, RetinaNet loss_bbox /
# loss_reg). AutoAssign logs its regression inside loss_pos, so it has none to check.
REGRESSION_TERMS = ("loss_box", "loss_iou", "loss_loc", "loss_bbox", "loss_reg")
# `stalled_regression`: how many logged values are averaged at each end, and the least relative fall.
STALL_WINDOW = 5
STALL_MIN_DROP = 0.03


def read_record(path):
    """The metrics.json in `path` as written, or None while there is none (the run has not started)."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except ValueError as e:
        raise CompareError(f"{path} is not a training record (metrics.json): {e}") from None


def run_metrics(record):
    """A run's metrics (module docstring) from its metrics.json record (None: a run that logged nothing)."""
    record = record or {}
    train, evals = record.get("train", []), record.get("evals", [])
    steps = record.get("steps_per_epoch", 0)
    regression = {}
    for entry in train:
        for name, value in entry["terms"].items():
            if name in REGRESSION_TERMS:
                regression.setdefault(name, []).append(value)
    return {"loss": [(e["epoch"], e["step"], steps, e["loss"]) for e in train],
            "batch_cost": [e["batch_cost"] for e in train],
            "iterations": train[-1]["iteration"] if train else 0,
            "evals": [(e["epoch"] - 1, list(e["bbox"])) for e in evals],
            "seconds": record.get("seconds"), "finished": bool(record.get("finished")),
            "regression": regression}


def read_run(path):
    """`run_metrics` of the metrics.json in `path` (empty metrics while there is none)."""
    return run_metrics(read_record(path))


def logged_iterations(metrics):
    """Iterations done according to the run's last logged step (0 if none)."""
    return metrics["iterations"]


def stalled_regression(regression, window=STALL_WINDOW, min_drop=STALL_MIN_DROP):
    """Box-regression terms that did not train: the mean of their last `window` logged values is not at least
    `min_drop` (relative) below the mean of their first `window`. Terms with fewer than 2 * `window` values
    are not judged.

    Such a run has a dead regression branch (e.g. ppdet's FCOSHead, whose ReLU on the distances can turn every
    output to 0 in the first steps; docs/reports/fcos_regression.md): its AP is not the method's.

    Args:
        regression (dict): term -> [value per logged step] (a run's metrics' ``regression``).
    Returns:
        sorted list of term names.
    """
    stalled = []
    for name, values in regression.items():
        if len(values) < 2 * window:
            continue
        first = sum(values[:window]) / window
        last = sum(values[-window:]) / window
        if last > (1.0 - min_drop) * first:
            stalled.append(name)
    return sorted(stalled)


def summarize_run(metrics, iterations=None):
    """One table row from a run's metrics: final COCO stats, seconds per iteration, iterations.

    `iterations` (the budget's) is reported as given; without it, the last logged step is counted.
    """
    losses, costs = metrics["loss"], metrics["batch_cost"]
    # The first logged steps include start-up (graph building, first data load): use the median.
    sec_per_iter = sorted(costs)[len(costs) // 2] if costs else None
    if iterations is None:
        iterations = logged_iterations(metrics)
    final = metrics["evals"][-1][1] if metrics["evals"] else None
    row = {"iterations": iterations, "sec_per_iter": sec_per_iter, "train_seconds": metrics["seconds"],
           "final_loss": losses[-1][3] if losses else None,
           "stalled": stalled_regression(metrics.get("regression", {}))}
    row.update({name: (final[i] if final else None) for i, name in enumerate(COCO_STAT_NAMES)})
    return row

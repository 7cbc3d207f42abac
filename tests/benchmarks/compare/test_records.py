"""benchmarks.compare.records: a run's metrics from the metrics.json tools/train.py writes, and its table row.

data/metrics_dw_norefine.json is such a record, made by
``tools/compare.py --methods dw_norefine --epochs 3 --train_images 8 --val_images 4 --image_size 64
--batch_size 4 --eval_interval 1 -o log_iter=2 MultiClassNMS.score_threshold=0.0001``.
"""
import json
import os

import pytest

from benchmarks.compare import records
from benchmarks.compare.errors import CompareError

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "metrics_dw_norefine.json")


def test_metrics_file_is_the_one_the_trainer_writes():
    from ppassign.engine.record import RECORD_FILE
    assert records.METRICS_FILE == RECORD_FILE


def test_run_metrics_reads_losses_costs_and_evaluations_of_a_training_record():
    metrics = records.read_run(FIXTURE)
    assert metrics["loss"] == [(0, 0, 2, 2.289352), (1, 0, 2, 2.163085), (2, 0, 2, 1.984562)]
    assert metrics["batch_cost"] == [0.073565, 0.055332, 0.053545]
    assert metrics["iterations"] == 5 and records.logged_iterations(metrics) == 5
    assert [e for e, _ in metrics["evals"]] == [0, 1, 2]  # after the epoch with that 0-based index
    assert metrics["evals"][2][1][:2] == [0.0020889669612122502, 0.012046204620462046]
    assert all(len(stats) == 12 for _, stats in metrics["evals"])
    assert metrics["seconds"] == 0.613 and metrics["finished"] is True
    row = records.summarize_run(metrics, iterations=6)
    assert (row["AP"], row["APl"], row["sec_per_iter"], row["iterations"], row["train_seconds"]) == \
        (0.0020889669612122502, -1.0, 0.055332, 6, 0.613)
    assert records.summarize_run(metrics)["iterations"] == 5  # without the budget's: the last logged step
    assert row["final_loss"] == 1.984562 and row["stalled"] == []


def test_run_metrics_collects_the_box_regression_terms_only():
    metrics = records.read_run(FIXTURE)
    assert metrics["regression"] == {"loss_loc": [1.152335, 1.13533, 1.116037]}  # not loss_cls_pos / _neg
    entry = {"epoch": 0, "step": 0, "iteration": 1, "loss": 2.0, "batch_cost": 0.5,
             "terms": {"loss_cls": 0.5, "loss_box": 0.9, "loss_quality": 0.7}}
    assert records.run_metrics({"train": [entry], "steps_per_epoch": 3})["regression"] == {"loss_box": [0.9]}


def test_a_run_without_a_record_yet_has_empty_metrics(tmp_path):
    metrics = records.read_run(str(tmp_path / "metrics.json"))
    assert metrics["loss"] == [] and metrics["evals"] == [] and metrics["iterations"] == 0
    assert metrics["seconds"] is None and metrics["finished"] is False
    row = records.summarize_run(metrics)
    assert row["AP"] is None and row["sec_per_iter"] is None and row["final_loss"] is None


def test_a_record_that_is_not_json_is_named(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text("{half")
    with pytest.raises(CompareError, match="metrics.json"):
        records.read_record(str(path))


def test_an_evaluation_without_detections_reads_as_zeros():
    with open(FIXTURE) as f:
        record = json.load(f)
    record["evals"].append({"epoch": 4, "iteration": 8, "bbox": [0.0] * 12, "no_detections": True})
    metrics = records.run_metrics(record)
    assert metrics["evals"][-1] == (3, [0.0] * 12) and records.summarize_run(metrics)["AP"] == 0.0


def test_stalled_regression_flags_a_flat_box_loss():
    # ppdet's FCOSHead with a dead regression branch: loss_box stays at ~0.93 (docs/reports/fcos_regression.md).
    flat = [0.933, 0.925, 0.919, 0.904, 0.920] + [0.93, 0.928, 0.925, 0.931, 0.927]
    falling = [0.946, 0.887, 0.756, 0.716, 0.642] + [0.6, 0.58, 0.56, 0.55, 0.53]
    assert records.stalled_regression({"loss_box": flat, "loss_loc": falling}) == ["loss_box"]


def test_stalled_regression_leaves_short_logs_and_small_but_real_drops_alone():
    assert records.stalled_regression({"loss_box": [0.9] * 9}) == []  # fewer than 2 * window values
    assert records.stalled_regression({"loss_iou": [1.0] * 5 + [0.96] * 5}) == []  # 4% down
    assert records.stalled_regression({"loss_iou": [1.0] * 5 + [0.98] * 5}) == ["loss_iou"]  # 2% down

"""benchmarks.compare (run_comparison, run_seeds): every method for a seed, every seed, the reports they write and
the runs they record. The trainings run tests/compare_cases.py's stand-in for tools/train.py."""
import functools
import json
import os

import pytest

from benchmarks import compare
from benchmarks.compare import launch, results
from compare_cases import fake_trainer


def test_run_comparison_reports_a_stopped_run_as_stopped_with_its_iterations(tmp_path, monkeypatch):
    fake_trainer(tmp_path, monkeypatch, "flat", steps=3000, pause=0.005)
    monkeypatch.setattr(launch, "train_method", functools.partial(launch.train_method, poll_seconds=0.2))
    compare.run_comparison(str(tmp_path / "out"), "fcos", stop_stalled=50, dataset_dir=str(tmp_path / "ds"))
    with open(tmp_path / "out" / "results.json") as f:
        row = json.load(f)["rows"][0]
    assert row["stopped"].startswith("regression stalled (loss_box)") and 50 <= row["iterations"] < 3000
    assert "FCOS (ppdet FCOSHead, baseline) (stopped)" in (tmp_path / "out" / "results.md").read_text()


def test_run_comparison_prints_why_a_run_failed(tmp_path, monkeypatch, capsys):
    fake_trainer(tmp_path, monkeypatch, "diverged")
    rows = compare.run_comparison(str(tmp_path / "out"), "fcos", dataset_dir=str(tmp_path / "ds"))
    assert not rows[0]["ok"]
    assert "compare: fcos failed (exit status 2: training diverged: the loss is nan" in capsys.readouterr().out


def test_run_comparison_rejects_a_bad_stop_stalled(tmp_path):
    with pytest.raises(ValueError, match="stop_stalled must be an int >= 0"):
        compare.run_comparison(str(tmp_path), "fcos", stop_stalled=-1)


def test_run_comparison_writes_rows_curves_and_plot_from_the_training_records(tmp_path, monkeypatch):
    fake_trainer(tmp_path, monkeypatch, epochs=2, steps=3)
    budget = dict(launch.default_budget(), epochs=2, train_images=24)
    rows = compare.run_comparison(str(tmp_path / "out"), "fcos,dw", budget, dataset_dir=str(tmp_path / "ds"))
    with open(tmp_path / "out" / "results.json") as f:
        saved = json.load(f)
    assert saved["rows"] == rows and [r["method"] for r in rows] == ["fcos", "dw"]
    assert rows[0]["AP"] == pytest.approx(0.2) and rows[0]["iterations"] == 6 and rows[0]["train_seconds"] == 1.5
    assert saved["curves"]["dw"]["evals"] == [[0, [0.1] + [0.0] * 11], [1, [0.2] + [0.0] * 11]]
    assert results.collect_curves([str(tmp_path / "out")]) == {0: {"fcos": [(1, 0.1), (2, 0.2)],
                                                                   "dw": [(1, 0.1), (2, 0.2)]}}
    assert (tmp_path / "out" / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_run_comparison_with_a_record_file_appends_each_finished_run(tmp_path, monkeypatch):
    fake_trainer(tmp_path, monkeypatch, epochs=2)
    monkeypatch.setattr(launch, "current_commit", lambda repo=None: "abc1234")
    record = str(tmp_path / "docs" / "tiny_budget.jsonl")
    budget = dict(launch.default_budget(), epochs=2)
    compare.run_seeds(str(tmp_path / "out"), "fcos,dw", budget, seeds=(3, 4), dataset_dir=str(tmp_path / "ds"),
                      record=record)
    lines = results.read_record_file(record)
    assert [(line["method"], line["seed"]) for line in lines] == [("fcos", 3), ("dw", 3), ("fcos", 4), ("dw", 4)]
    assert all(line["experiment"] == "tiny_budget" and line["commit"] == "abc1234" and line["budget"] == budget
               for line in lines)
    assert lines[0]["curve"] == [[1, 0.1], [2, 0.2]] and lines[0]["AP"] == pytest.approx(0.2)
    compare.run_comparison(str(tmp_path / "out" / "seed3"), "fcos", budget, seed=3,
                           dataset_dir=str(tmp_path / "ds"), resume=True, record=record)
    assert len(results.read_record_file(record)) == 4  # the finished run read again is not recorded twice


def test_run_comparison_checks_the_record_file_name_before_training(tmp_path, monkeypatch):
    monkeypatch.setattr(launch.subprocess, "Popen", None)  # training would fail
    with pytest.raises(ValueError, match="<experiment>.jsonl"):
        compare.run_comparison(str(tmp_path), "fcos", record=str(tmp_path / "e.json"))


def test_run_seeds_writes_the_seeds_table_and_every_seeds_curves(tmp_path, monkeypatch):
    budget = launch.default_budget()

    def fake_run(seed_dir, methods, budget_, seed, *args):
        rows = [{"method": "dw", "label": "DW", "ok": True, "AP": 0.1 * (seed + 1), "AP50": 0.5, "AP75": 0.2,
                 "sec_per_iter": 1.0}]
        os.makedirs(seed_dir)
        with open(os.path.join(seed_dir, "results.json"), "w") as f:
            json.dump({"budget": budget, "seed": seed, "rows": rows,
                       "curves": {"dw": {"loss": [], "evals": [[1, [0.05 * (seed + 1)] + [0.0] * 11]]}}}, f)
        return rows

    monkeypatch.setattr(compare, "run_comparison", fake_run)
    found = compare.run_seeds(str(tmp_path / "out"), "dw", None, seeds=(0, 1), dataset_dir=str(tmp_path / "d"))
    assert sorted(found) == [0, 1]
    assert "| DW | 10.0 | 20.0 | 15.0 | 10.0 |" in (tmp_path / "out" / "results.md").read_text()
    assert results.collect_curves([str(tmp_path / "out")]) == {0: {"dw": [(2, 0.05)]}, 1: {"dw": [(2, 0.1)]}}
    assert (tmp_path / "out" / "curves.png").read_bytes()[:4] == b"\x89PNG"

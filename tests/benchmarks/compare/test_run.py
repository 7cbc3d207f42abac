"""benchmarks.compare (run_comparison, run_seeds): every method for a seed, every seed, the reports they write."""
import functools
import json
import os

import pytest

from benchmarks import compare
from test_launch import _fake_trainer


def test_run_comparison_reports_a_stopped_run_as_stopped_with_its_iterations(tmp_path, monkeypatch):
    _fake_trainer(tmp_path, monkeypatch, "flat", steps=3000, pause=0.005)
    monkeypatch.setattr(compare, "train_method", functools.partial(compare.train_method, poll_seconds=0.2))
    compare.run_comparison(str(tmp_path / "out"), "fcos", stop_stalled=50, dataset_dir=str(tmp_path / "ds"))
    with open(tmp_path / "out" / "results.json") as f:
        row = json.load(f)["rows"][0]
    assert row["stopped"].startswith("regression stalled (loss_box)") and 50 <= row["iterations"] < 3000
    assert "FCOS (ppdet FCOSHead, baseline) (stopped)" in (tmp_path / "out" / "results.md").read_text()


def test_run_comparison_rejects_a_bad_stop_stalled(tmp_path):
    with pytest.raises(ValueError, match="stop_stalled must be an int >= 0"):
        compare.run_comparison(str(tmp_path), "fcos", stop_stalled=-1)


def test_run_seeds_writes_the_seeds_table_and_every_seeds_curves(tmp_path, monkeypatch):
    budget = compare.default_budget()

    def fake_run(seed_dir, methods, budget_, seed, *args):
        rows = [{"method": "dw", "label": "DW", "ok": True, "AP": 0.1 * (seed + 1), "AP50": 0.5, "AP75": 0.2,
                 "sec_per_iter": 1.0}]
        os.makedirs(seed_dir)
        with open(os.path.join(seed_dir, "results.json"), "w") as f:
            json.dump({"budget": budget, "seed": seed, "rows": rows,
                       "curves": {"dw": {"loss": [], "evals": [[1, [0.05 * (seed + 1)] + [0.0] * 11]]}}}, f)
        return rows

    monkeypatch.setattr(compare, "run_comparison", fake_run)
    results = compare.run_seeds(str(tmp_path / "out"), "dw", None, seeds=(0, 1), dataset_dir=str(tmp_path / "d"))
    assert sorted(results) == [0, 1]
    assert "| DW | 10.0 | 20.0 | 15.0 | 10.0 |" in (tmp_path / "out" / "results.md").read_text()
    assert compare.collect_curves([str(tmp_path / "out")]) == {0: {"dw": [(2, 0.05)]}, 1: {"dw": [(2, 0.1)]}}
    assert (tmp_path / "out" / "curves.png").read_bytes()[:4] == b"\x89PNG"

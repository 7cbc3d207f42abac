"""Shared by tests/benchmarks/compare/ and tests/tools/test_compare.py: saved results."""
import json


def saved_run(folder, budget, rows_by_seed):
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps({"budget": budget, "rows": rows_by_seed}))
    return str(folder)

"""Saved results: a comparison folder's ``results.json`` and an experiment's record file (JSON lines).

- ``<output_dir>/results.json``, written by `run_comparison` (one seed: ``budget``, ``seed``, ``rows``, ``curves``
  {method: {"loss": [[epoch, step, steps_per_epoch, loss]], "evals": [[epoch index, 12 COCO stats]]}}) or by
  `run_seeds` (``budget``, ``seeds``, ``rows`` {seed: rows}; the curves in ``seed<k>/results.json``).
- ``docs/results/<experiment>.jsonl``: one line per finished run (`experiment_line`; docs/results/README.md).

`collect_results` / `collect_curves` read either kind for the tables; `append_records` adds runs' lines.
"""
import json
import os

from .errors import CompareError

RECORD_SUFFIX = ".jsonl"
# The row fields an experiment line keeps, after experiment, method, label and seed.
LINE_STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
# Budget entries that change the training (eval_interval only sets when it is evaluated and checkpointed).
TRAINING_BUDGET_KEYS = ("epochs", "train_images", "val_images", "image_size", "batch_size")


def is_record_file(path):
    return path.endswith(RECORD_SUFFIX)


def _load_json(path, what):
    if not os.path.isfile(path):
        raise CompareError(f"no {what}")
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except ValueError as e:
            raise CompareError(f"{path} is not JSON: {e}") from None


def read_record_file(path):
    """The lines of an experiment's record file, as dicts; CompareError naming the line that is not JSON."""
    if not os.path.isfile(path):
        raise CompareError(f"no record file {path}")
    lines = []
    with open(path, encoding="utf-8") as f:
        for number, text in enumerate(f, 1):
            if text.strip():
                try:
                    lines.append(json.loads(text))
                except ValueError as e:
                    raise CompareError(f"{path} line {number} is not JSON: {e}") from None
    return lines


def _saved_runs(path):
    """(budget, {seed: rows}, {seed: {method: [(epoch, AP)]}}) of a results folder or a record file, per source
    in order (a record file: one per line)."""
    if is_record_file(path):
        for line in read_record_file(path):
            row = {key: value for key, value in line.items() if key not in ("experiment", "budget", "curve")}
            row.setdefault("ok", True)
            curve = [(int(epoch), ap) for epoch, ap in line.get("curve") or ()]
            yield line["budget"], {int(line["seed"]): [row]}, {int(line["seed"]): {line["method"]: curve}}
        return
    saved = _load_json(os.path.join(path, "results.json"), f"results.json in {path}")
    per_seed = saved["rows"] if isinstance(saved["rows"], dict) else {str(saved["seed"]): saved["rows"]}
    runs = [saved] if "curves" in saved else []
    for seed in (saved["rows"] if isinstance(saved["rows"], dict) else {}):
        seed_file = os.path.join(path, f"seed{seed}", "results.json")
        if os.path.isfile(seed_file):
            runs.append(_load_json(seed_file, seed_file))
    curves = {}
    for run in runs:
        for method, curve in run["curves"].items():
            curves.setdefault(int(run["seed"]), {})[method] = [(e + 1, stats[0]) for e, stats in curve["evals"]]
    yield saved["budget"], {int(seed): rows for seed, rows in per_seed.items()}, curves


def same_training(budget, other):
    """Whether two budgets train alike (`TRAINING_BUDGET_KEYS`; the evaluation interval may differ)."""
    return all(budget.get(key) == other.get(key) for key in TRAINING_BUDGET_KEYS)


def collect_results(paths):
    """Merge saved results of one budget (results folders and record files) into seed -> rows, for the tables.

    A method run twice with the same seed keeps the later one. Raises CompareError for a missing file or a run
    whose budget trains otherwise than the first one's.

    Returns:
        (results: seed -> rows, the first run's budget)
    """
    results, budget = {}, None
    for path in paths:
        for run_budget, per_seed, _ in _saved_runs(path):
            if budget is None:
                budget = run_budget
            elif not same_training(run_budget, budget):
                raise CompareError(f"{path} holds a run with another budget ({run_budget}) than {paths[0]} "
                                   f"({budget}): tabulate one budget at a time")
            for seed, rows in per_seed.items():
                merged = {row["method"]: row for row in results.get(seed, [])}
                merged.update({row["method"]: row for row in rows})
                results[seed] = list(merged.values())
    return results, budget


def collect_curves(paths):
    """AP curves of the runs `collect_results` merges: seed -> method -> [(epoch, AP), ...] (the later run wins).

    A `run_comparison` folder keeps them in its results.json, a `run_seeds` folder in ``seed<k>/results.json``,
    a record file in each line; a run without them is left out.
    """
    curves = {}
    for path in paths:
        for _, _, per_seed in _saved_runs(path):
            for seed, methods in per_seed.items():
                for method, curve in methods.items():
                    if curve:
                        curves.setdefault(seed, {})[method] = curve
    return curves


def only_methods(results, curves, methods):
    """The runs of `methods` only, in that order: (results seed -> rows, curves seed -> method -> curve)."""
    order = {name: i for i, name in enumerate(methods)}
    kept = {seed: sorted((row for row in rows if row["method"] in order), key=lambda row: order[row["method"]])
            for seed, rows in results.items()}
    return ({seed: rows for seed, rows in kept.items() if rows},
            {seed: {m: c for m, c in per.items() if m in order} for seed, per in curves.items()})


def parse_sweep(items):
    """['1x=dirA,dirB', '3x=c.jsonl'] -> [('1x', ['dirA', 'dirB']), ('3x', ['c.jsonl'])] (results folders or
    record files per budget); ValueError naming a bad item."""
    sweep = []
    for item in items:
        label, sep, dirs = item.partition("=")
        folders = [d for d in dirs.split(",") if d]
        if not sep or not label or not folders:
            raise ValueError(f"--sweep items must be LABEL=DIR[,DIR...], got {item!r}")
        if label in [name for name, _ in sweep]:
            raise ValueError(f"--sweep label {label!r} is given twice")
        sweep.append((label, folders))
    if not sweep:
        raise ValueError("--sweep needs at least one LABEL=DIR[,DIR...]")
    return sweep


def experiment_name(path):
    """The experiment a record file holds: its name without .jsonl (ValueError for another suffix)."""
    if not is_record_file(path):
        raise ValueError(f"a record file is named <experiment>{RECORD_SUFFIX}, got {path!r}")
    return os.path.basename(path)[:-len(RECORD_SUFFIX)]


def experiment_line(experiment, row, seed, budget, curve, commit=None):
    """One run's line of an experiment's record file (docs/results/README.md).

    Args:
        row (dict): the run's table row (`run_comparison`). curve: [(epoch, AP), ...] after each evaluation.
        commit (str | None): the commit the run used where its row has none.
    """
    line = {"experiment": experiment, "method": row["method"], "label": row["label"], "seed": int(seed),
            "budget": dict(budget), "commit": row.get("commit") or commit}
    line.update({key: row.get(key) for key in LINE_STATS})
    line["curve"] = [[int(epoch), ap] for epoch, ap in curve or ()]
    line.update({"sec_per_iter": row.get("sec_per_iter"), "iterations": row.get("iterations"),
                 "train_seconds": row.get("train_seconds"), "stalled": list(row.get("stalled") or ()),
                 "stopped": row.get("stopped"), "resumed": list(row.get("resumed") or ())})
    return line


def _key(line):
    return line["method"], line["seed"], json.dumps(line["budget"], sort_keys=True), line["commit"]


def append_records(path, lines):
    """Append `lines` (`experiment_line`s) to the record file `path` (created if missing).

    A line the file already holds for the same method, seed, budget and commit is not appended again; a line of
    another experiment than the file's name is refused (CompareError). Returns the lines appended.
    """
    experiment = experiment_name(path)
    held = {_key(line) for line in read_record_file(path)} if os.path.isfile(path) else set()
    new = []
    for line in lines:
        if line["experiment"] != experiment:
            raise CompareError(f"a line of experiment {line['experiment']!r} does not belong in {path}")
        if _key(line) not in held:
            held.add(_key(line))
            new.append(line)
    if new:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            for line in new:
                f.write(json.dumps(line) + "\n")
    return new


def record_runs(paths, record, commit=None):
    """Append to the record file `record` the lines of the saved runs in `paths` (one budget) that finished or
    were stopped; `commit` for those whose results do not name theirs.

    Returns:
        (lines appended, lines of all those runs)
    """
    found, budget = collect_results(paths)
    curves = collect_curves(paths)
    experiment = experiment_name(record)
    lines = [experiment_line(experiment, row, seed, budget, curves.get(seed, {}).get(row["method"]), commit)
             for seed in sorted(found) for row in found[seed] if row.get("ok", True) or row.get("stopped")]
    return append_records(record, lines), lines

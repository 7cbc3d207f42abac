"""The comparison's Markdown tables: one seed's runs, the seeds of one budget, every run with its curve, and a
budget sweep. AP columns in percent; -1 from COCOeval (no object of that size) prints as n/a.

A row is `run_comparison`'s (method, label, ok, the COCO stats, sec_per_iter, train_seconds, iterations and,
where they apply, stalled / stopped / resumed); results map seed -> rows (`results.collect_results`).
"""
from .catalogue import METHODS


def _marks(rows):
    """' (stopped)' or ' (failed)', ' (regression stalled: <terms>)' and ' (resumed after epoch <N>)', for the
    label of a method's row(s)."""
    marks = (" (stopped)" if any(row.get("stopped") for row in rows) else
             " (failed)" if any(not row.get("ok", True) for row in rows) else "")
    stalled = sorted({term for row in rows for term in row.get("stalled") or ()})
    resumed = sorted({epoch for row in rows for epoch in row.get("resumed") or ()})
    return (marks + (f" (regression stalled: {', '.join(stalled)})" if stalled else "")
            + (f" (resumed after epoch {', '.join(map(str, resumed))})" if resumed else ""))


def markdown_table(rows):
    """Markdown table of the comparison; AP columns in percent (-1 from COCOeval: no object of that size)."""
    head = ("| method | AP | AP50 | AP75 | APs | APm | APl | s / iter | train time (s) | iterations |\n"
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
    lines = []
    for row in rows:
        aps = [_pct(row.get(k)) for k in ("AP", "AP50", "AP75", "APs", "APm", "APl")]
        cost = "-" if row.get("sec_per_iter") is None else f"{row['sec_per_iter']:.2f}"
        secs = "-" if row.get("train_seconds") is None else f"{row['train_seconds']:.0f}"
        lines.append(f"| {row['label']}{_marks([row])} | " + " | ".join(aps) + f" | {cost} | {secs} | "
                     f"{row.get('iterations', 0)} |")
    return head + "\n".join(lines) + "\n"


def seeds_table(results):
    """Markdown table over seeds: each method's AP / AP50 / AP75 per seed, their mean and spread (max - min).

    Args:
        results (dict): seed -> list of rows (run_comparison's output for that seed).
    """
    seeds = sorted(results)
    per = {}
    for seed in seeds:
        for row in results[seed]:
            per.setdefault(row["method"], {"label": row["label"]})[seed] = row
    head = ("| method | " + " | ".join(f"AP seed {s}" for s in seeds) + " | AP mean | AP spread | AP50 mean | "
            "AP50 spread | AP75 mean | s / iter |\n| --- |" + " ---: |" * (len(seeds) + 6) + "\n")
    lines = []
    for method, runs in per.items():
        cells = [_pct(runs[s].get("AP")) if s in runs else "-" for s in seeds]
        stats = []
        for key in ("AP", "AP50", "AP75"):
            values = [runs[s][key] for s in seeds if s in runs and runs[s].get(key) is not None]
            mean = sum(values) / len(values) if values else None
            stats.append(_pct(mean))
            if key != "AP75":
                stats.append("-" if len(values) < 2 else f"{100 * (max(values) - min(values)):.1f}")
        costs = [runs[s]["sec_per_iter"] for s in seeds if s in runs and runs[s].get("sec_per_iter")]
        cost = f"{sum(costs) / len(costs):.2f}" if costs else "-"
        marks = _marks([runs[s] for s in seeds if s in runs])
        lines.append(f"| {runs['label']}{marks} | " + " | ".join(cells + stats) + f" | {cost} |")
    return head + "\n".join(lines) + "\n"


def runs_table(results, curves=None):
    """Markdown table with one line per method and seed: the COCO APs and the AP after each evaluation.

    Args:
        results (dict): seed -> rows, as for `seeds_table`. curves (dict | None): from `collect_curves`.
    """
    head = ("| method | seed | AP | AP50 | AP75 | APs | APm | APl | AP after each evaluation (epoch: AP) |\n"
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
    order = []
    for seed in sorted(results):
        order += [row["method"] for row in results[seed] if row["method"] not in order]
    lines = []
    for method in order:
        for seed in sorted(results):
            row = next((r for r in results[seed] if r["method"] == method), None)
            if row is None:
                continue
            curve = (curves or {}).get(seed, {}).get(method)
            evals = ", ".join(f"{epoch}: {_pct(ap)}" for epoch, ap in curve) if curve else "-"
            aps = [_pct(row.get(k)) for k in ("AP", "AP50", "AP75", "APs", "APm", "APl")]
            lines.append(f"| {row['label']}{_marks([row])} | {seed} | " + " | ".join(aps) + f" | {evals} |")
    return head + "\n".join(lines) + "\n"


def sweep_table(budgets):
    """Markdown table of a budget sweep: one line per method (METHODS order), per budget its AP mean and the AP of
    each seed.

    Args:
        budgets (list): [(label, results), ...] in column order; results: seed -> rows, as for `seeds_table`
            (one budget each, e.g. from `collect_results`).
    """
    labels = {row["method"]: row["label"] for _, results in budgets for seed in sorted(results)
              for row in results[seed]}
    rank = {method: i for i, method in enumerate(METHODS)}
    order = sorted(labels, key=lambda m: rank.get(m, len(rank)))
    head = ("| method | " + " | ".join(f"{label}: AP mean (per seed)" for label, _ in budgets) + " |\n"
            "| --- |" + " ---: |" * len(budgets) + "\n")
    lines = []
    for method in order:
        cells = []
        for _, results in budgets:
            per_seed = [(seed, row["AP"]) for seed in sorted(results) for row in results[seed]
                        if row["method"] == method and row.get("AP") is not None]
            if not per_seed:
                cells.append("-")
                continue
            mean = sum(ap for _, ap in per_seed) / len(per_seed)
            seeds = " / ".join(f"s{seed} {_pct(ap)}" for seed, ap in per_seed)
            cells.append(f"{_pct(mean)} ({seeds})")
        lines.append(f"| {labels[method]} | " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"


def _pct(value):
    if value is None:
        return "-"
    return "n/a" if value < 0 else f"{100 * value:.1f}"




def method_labels(results):
    """method -> label over the rows of `results` (seed -> rows)."""
    return {row["method"]: row["label"] for rows in results.values() for row in rows}

"""Train several label-assignment methods under one budget and compare them (the library of tools/compare.py).

Every method is a config in ``benchmarks/configs/`` that shares ``_base_compare.yml`` (data, backbone, neck,
optimizer, readers); only the head differs. For a run, each method gets a small derived config
(``<output_dir>/<method>/config.yml``: ``_BASE_`` = the method's file, plus the budget) and is trained by the
project's own ``tools/train.py --eval --seed`` in a subprocess (a fresh ppdet workspace per method). The
training log is parsed for the loss, the time per iteration and the COCO numbers of every evaluation.

Outputs in ``output_dir``: ``results.md`` (the table), ``results.json`` (everything parsed), ``curves.png``
(loss vs iteration, mAP vs epoch), and per method ``config.yml``, ``train.log`` and its checkpoints.
"""
import json
import os
import re
import subprocess
import sys
import time

import yaml

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_DIR = os.path.join(REPO_ROOT, "benchmarks", "configs")
TRAIN_TOOL = os.path.join(REPO_ROOT, "tools", "train.py")

# Method name -> (config file in CONFIG_DIR, what it is). The order is the table's order.
METHODS = {
    "fcos": ("fcos.yml", "FCOS (ppdet FCOSHead, baseline)"),
    "atss_only": ("atss_only.yml", "ATSS only (PP-YOLOE head)"),
    "tal_only": ("tal_only.yml", "task-aligned only (PP-YOLOE head)"),
    "autoassign": ("autoassign.yml", "AutoAssign"),
    "dw_norefine": ("dw_norefine.yml", "DW without refinement"),
    "dw": ("dw.yml", "DW with refinement"),
}
# RetinaNet (ppdet's architecture, PPAssignRetinaHead) with each RetinaNet assigner, one anchor per location
# (retina_*) and RetinaNet's nine (retina9_*): the label-assignment survey's and the ATSS paper's comparison.
RETINA_ASSIGNERS = {"maxiou": "max-IoU", "topk": "top-k", "atss": "ATSS", "fcos_rule": "FCOS rule",
                    "noisy_anchor": "noisy-anchor", "hambox": "HAMBox"}
for _key, _label in RETINA_ASSIGNERS.items():
    METHODS[f"retina_{_key}"] = (f"retina_{_key}.yml", f"RetinaNet A=1, {_label}")
for _key, _label in RETINA_ASSIGNERS.items():
    METHODS[f"retina9_{_key}"] = (f"retina9_{_key}.yml", f"RetinaNet A=9, {_label}")
# Variants of the FCOS-style methods (benchmarks/configs/variants/<name>.yml: the method's file plus one change),
# for the set-up, alignment and ablation experiments of docs/analysis.md. name -> (group, what it changes).
VARIANTS = {
    "fcos_sgd": ("setup", "FCOS, SGD 0.005 + momentum (papers' optimizer)"),
    "autoassign_sgd": ("setup", "AutoAssign, SGD 0.005 + momentum (papers' optimizer)"),
    "dw_sgd": ("setup", "DW, SGD 0.005 + momentum (papers' optimizer)"),
    "fcos_nonormdecay": ("setup", "FCOS, no weight decay on norm parameters"),
    "autoassign_nonormdecay": ("setup", "AutoAssign, no weight decay on norm parameters"),
    "dw_nonormdecay": ("setup", "DW, no weight decay on norm parameters"),
    "autoassign_p37": ("setup", "AutoAssign on P3-P7"),
    "dw_p37": ("setup", "DW on P3-P7"),
    "autoassign_bias": ("align", "AutoAssign, bias in the tower convs"),
    "autoassign_offset0": ("align", "AutoAssign, point offset 0"),
    "dw_nobias": ("align", "DW, no bias in the tower convs (before 2026-12-03)"),
    "dw_norefine_nobias": ("align", "DW without refinement, no bias in the tower convs (before 2026-12-03)"),
    "dw_clamp": ("align", "DW, refinement points clamped into the map"),
    "autoassign_prior_fixed": ("autoassign_ablation", "AutoAssign, centre prior fixed"),
    "autoassign_prior_off": ("autoassign_ablation", "AutoAssign, no centre prior"),
    "autoassign_noconf": ("autoassign_ablation", "AutoAssign, no confidence weighting"),
    "autoassign_noobj": ("autoassign_ablation", "AutoAssign, no implicit objectness"),
    "dw_norefine_posonly": ("dw_ablation", "DW without refinement, positive weighting only"),
    "dw_norefine_negonly": ("dw_ablation", "DW without refinement, negative weighting only"),
}
for _name, (_group, _label) in VARIANTS.items():
    METHODS[_name] = (os.path.join("variants", f"{_name}.yml"), _label)
# Names that stand for several methods in --methods.
GROUPS = {"all": [m for m in METHODS if not m.startswith("retina") and m not in VARIANTS],
          "retinanet": [f"retina_{k}" for k in RETINA_ASSIGNERS],
          "retinanet9": [f"retina9_{k}" for k in RETINA_ASSIGNERS]}
for _name, (_group, _label) in VARIANTS.items():
    GROUPS.setdefault(_group, []).append(_name)
# Methods beside the six of "all": RTMDet's dynamic soft labels in the PP-YOLOE head (as atss_only / tal_only).
METHODS["dsl_only"] = ("dsl_only.yml", "dynamic soft labels only (PP-YOLOE head)")

# COCOeval.stats order (pycocotools): AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl.
COCO_STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
NUM_COCO_STATS = len(COCO_STAT_NAMES)

_TRAIN_LINE = re.compile(r"Epoch: \[(\d+)\] \[\s*(\d+)/(\d+)\].*?\bloss: ([-+0-9.eE]+|nan|inf)")
_BATCH_COST = re.compile(r"batch_cost: ([0-9.]+)")
_COCO_LINE = re.compile(r"Average (?:Precision|Recall)\s+\((?:AP|AR)\) @\[.*\] = (-?[0-9.]+)")
_EMPTY_EVAL = "Evaluation results empty"
_TRAIN_SECONDS = re.compile(r"ppassign: training finished in ([0-9.]+) s")
# The line train_method appends to a method's log before it resumes the run (see `resume_point`).
_RESUMED = re.compile(r"^compare: resumed after epoch (\d+) ")
# The box-regression terms the heads log (FCOS loss_box, PP-YOLOE loss_iou, DW loss_loc, RetinaNet loss_bbox /
# loss_reg). AutoAssign logs its regression inside loss_pos, so it has none to check.
REGRESSION_TERMS = ("loss_box", "loss_iou", "loss_loc", "loss_bbox", "loss_reg")
_REGRESSION_TERM = re.compile(r"\b(" + "|".join(REGRESSION_TERMS) + r"): ([-+0-9.eE]+)")


class CompareError(Exception):
    """A user-facing error (bad method name, bad budget, a training run that failed)."""


def default_budget():
    """The small CPU budget: all six methods together in well under an hour on 2 cores (see docs/analysis.md)."""
    return {"epochs": 8, "train_images": 192, "val_images": 48, "image_size": 160, "batch_size": 8,
            "eval_interval": 2}


def check_budget(budget):
    """ValueError naming the first budget entry that is not a positive int (image_size also >= 64)."""
    for key in ("epochs", "train_images", "val_images", "image_size", "batch_size", "eval_interval"):
        value = budget.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"budget {key} must be a positive int, got {value!r}")
    if budget["image_size"] < 64:
        raise ValueError(f"budget image_size must be >= 64 (3 FPN levels down to stride 32), got "
                         f"{budget['image_size']}")
    if budget["train_images"] < budget["batch_size"]:
        raise ValueError(f"budget train_images ({budget['train_images']}) must be >= batch_size "
                         f"({budget['batch_size']}): the reader drops the last incomplete batch")


def parse_methods(text):
    """'fcos,dw' or ['fcos', 'dw'] or a group ('all', 'retinanet', 'retinanet9', also inside a list)
    -> checked list of method names, groups expanded in METHODS order, duplicates dropped."""
    items = ["all"] if text is None else \
        [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    names = []
    for item in items:
        for name in GROUPS.get(item, [item]):
            if name not in names:
                names.append(name)
    if not names:
        raise ValueError("methods must name at least one method")
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise ValueError(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)} "
                         f"or the groups {', '.join(GROUPS)}")
    return names


def derived_config(method, budget, config_dir=CONFIG_DIR):
    """The YAML text of a method's run config: its config file as _BASE_, plus the budget's schedule.

    The cosine schedule's max_epochs follows the budget's epochs, so every method decays to the same end.
    (The dataset part of the budget is passed as -o overrides: see `dataset_overrides`.)
    """
    base = os.path.abspath(os.path.join(config_dir, METHODS[method][0]))
    if not os.path.isfile(base):
        raise CompareError(f"config of method {method!r} not found: {base}")
    base_lr = _base_lr(base)
    if base_lr is None:
        raise CompareError(f"config of method {method!r} sets no LearningRate.base_lr (nor do its _BASE_ files)")
    cfg = {
        "_BASE_": [base],
        "epoch": budget["epochs"],
        "snapshot_epoch": budget["eval_interval"],
        "LearningRate": {"base_lr": base_lr,
                         "schedulers": [{"name": "CosineDecay", "max_epochs": budget["epochs"]},
                                        {"name": "LinearWarmup", "start_factor": 0.1, "steps": 20}]},
        "TrainReader": {"batch_size": budget["batch_size"]},
    }
    return yaml.safe_dump(cfg, sort_keys=False)


def dataset_overrides(budget, dataset_dir):
    """``-o`` overrides that size the synthetic train/val splits and put them under `dataset_dir`."""
    root = os.path.abspath(dataset_dir)
    out = []
    for split, count in (("TrainDataset", budget["train_images"]), ("EvalDataset", budget["val_images"])):
        out += [f"{split}.dataset_dir={root}", f"{split}.num_images={count}",
                f"{split}.image_size={budget['image_size']}"]
    return out + [f"TestDataset.anno_path={os.path.join(root, 'annotations', 'val.json')}"]


def _base_lr(config_path):
    """LearningRate.base_lr of a config: its own, else that of its last ``_BASE_`` file that sets one (ppdet
    merges the bases in order, the file itself last). Read from the text: the configs use ppdet's YAML tags."""
    with open(config_path, encoding="utf-8") as f:
        text = f.read()
    match = re.search(r"^\s+base_lr:\s*([0-9.eE+-]+)", text, re.MULTILINE)
    if match:
        return float(match.group(1))
    bases = re.search(r"^_BASE_:\s*\[([^\]]*)\]", text, re.MULTILINE)
    for base in reversed(re.findall(r"['\"]([^'\"]+)['\"]", bases.group(1)) if bases else []):
        value = _base_lr(os.path.join(os.path.dirname(config_path), base))
        if value is not None:
            return value
    return None


# ----------------------------------------------------------------------------------------------- parsing

def parse_train_log(text):
    """Read a tools/train.py log.

    A log that `train_method` resumed holds several runs one after another: at each "compare: resumed after
    epoch N" line, what the earlier run logged from epoch N on (the part after its last checkpoint, which the
    resumed run trains again) is dropped.

    Returns:
        dict: ``loss`` [(epoch, step, steps_per_epoch, loss)], ``batch_cost`` [seconds per logged step],
        ``evals`` [(epoch, [12 COCO stats])] (an empty evaluation -- nothing detected -- counts as all 0),
        ``seconds`` (training wall time summed over the runs that finished, or None), ``regression`` {term:
        [value per logged step]} for the REGRESSION_TERMS the log has, ``resumed`` [N of every resume line].
    """
    losses, costs, evals, block, resumed = [], [], [], [], []
    regression = {}  # term -> [(epoch, value)] until the end
    epoch = 0
    seconds = None
    for line in text.splitlines():
        match = _TRAIN_LINE.search(line)
        if match:
            epoch, step, steps = int(match.group(1)), int(match.group(2)), int(match.group(3))
            losses.append((epoch, step, steps, float(match.group(4))))
            for name, value in _REGRESSION_TERM.findall(line):
                regression.setdefault(name, []).append((epoch, float(value)))
            cost = _BATCH_COST.search(line)
            if cost:
                costs.append((epoch, float(cost.group(1))))
            continue
        match = _COCO_LINE.search(line)
        if match:
            block.append(float(match.group(1)))
            if len(block) == NUM_COCO_STATS:
                evals.append((epoch, block))
                block = []
            continue
        if _EMPTY_EVAL in line:
            evals.append((epoch, [0.0] * NUM_COCO_STATS))
            continue
        match = _TRAIN_SECONDS.search(line)
        if match:
            seconds = (seconds or 0.0) + float(match.group(1))
            continue
        match = _RESUMED.search(line)
        if match:
            start = int(match.group(1))
            resumed.append(start)
            losses = [item for item in losses if item[0] < start]
            costs = [item for item in costs if item[0] < start]
            evals = [item for item in evals if item[0] < start]
            regression = {name: [item for item in values if item[0] < start] for name, values in regression.items()}
            block, epoch = [], start
    return {"loss": losses, "batch_cost": [cost for _, cost in costs], "evals": evals, "seconds": seconds,
            "regression": {name: [value for _, value in values] for name, values in regression.items() if values},
            "resumed": resumed}


def stalled_regression(regression, window=5, min_drop=0.03):
    """Box-regression terms that did not train: the mean of their last `window` logged values is not at least
    `min_drop` (relative) below the mean of their first `window`. Terms with fewer than 2 * `window` values
    are not judged.

    Such a run has a dead regression branch (e.g. ppdet's FCOSHead, whose ReLU on the distances can turn every
    output to 0 in the first steps; docs/analysis.md): its AP is not the method's.

    Args:
        regression (dict): term -> [value per logged step] (`parse_train_log`'s ``regression``).
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


def logged_iterations(parsed):
    """Iterations done according to the last logged training step of `parse_train_log`'s output (0 if none)."""
    losses = parsed["loss"]
    return losses[-1][0] * losses[-1][2] + losses[-1][1] + 1 if losses else 0


def summarize_run(parsed, iterations=None):
    """One table row from `parse_train_log`'s output: final COCO stats, seconds per iteration, iterations.

    `iterations` (the budget's) is reported as given; without it, the last logged step is counted.
    """
    losses, costs = parsed["loss"], parsed["batch_cost"]
    # The first logged steps include start-up (graph building, first data load): use the median.
    sec_per_iter = sorted(costs)[len(costs) // 2] if costs else None
    if iterations is None:
        iterations = logged_iterations(parsed)
    final = parsed["evals"][-1][1] if parsed["evals"] else None
    row = {"iterations": iterations, "sec_per_iter": sec_per_iter, "train_seconds": parsed["seconds"],
           "final_loss": losses[-1][3] if losses else None,
           "stalled": stalled_regression(parsed.get("regression", {}))}
    row.update({name: (final[i] if final else None) for i, name in enumerate(COCO_STAT_NAMES)})
    return row


# ------------------------------------------------------------------------------------------------ report

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


def plot_seed_curves(curves, labels, path):
    """PNG of AP vs epoch: one colour per method, one line style per seed.

    Args:
        curves (dict): seed -> method -> [(epoch, AP as a fraction), ...], as `collect_curves` returns.
        labels (dict): method -> label for the legend (the method's name where missing).
        path (str): the PNG to write.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 5))
    colours, styles = {}, ["-", "--", ":", "-."]
    for k, seed in enumerate(sorted(curves)):
        for name, points in curves[seed].items():
            if not points:
                continue
            colour = colours.setdefault(name, f"C{len(colours) % 10}")
            ax.plot([e for e, _ in points], [100 * ap for _, ap in points], styles[k % len(styles)],
                    color=colour, marker="o", markersize=3, label=f"{labels.get(name, name)} (seed {seed})")
    ax.set(xlabel="epoch", ylabel="COCO AP (%)", title="AP@[.5:.95] on the val split, every seed")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def method_labels(results):
    """method -> label over the rows of `results` (seed -> rows)."""
    return {row["method"]: row["label"] for rows in results.values() for row in rows}


def run_seeds(output_dir, methods="all", budget=None, seeds=(0, 1), threads=1, dataset_dir=None,
              config_dir=CONFIG_DIR, overrides=(), stop_stalled=0, resume=False):
    """`run_comparison` once per seed (into ``<output_dir>/seed<k>``, one shared dataset), then
    ``<output_dir>/results.md`` (the seeds table), ``results.json`` and ``curves.png`` over all seeds.

    Returns:
        dict seed -> rows.
    """
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct ints, got {seeds!r}")
    dataset_dir = dataset_dir or os.path.join(output_dir, "dataset")
    results = {}
    for seed in seeds:
        seed_dir = os.path.join(output_dir, f"seed{seed}")
        results[seed] = run_comparison(seed_dir, methods, budget, seed, threads, dataset_dir, config_dir, overrides,
                                       stop_stalled, resume)
        full = default_budget()
        full.update(budget or {})
        with open(os.path.join(output_dir, "results.md"), "w", encoding="utf-8") as f:
            f.write(f"Budget: {full['epochs']} epochs, {full['train_images']} train / {full['val_images']} val "
                    f"images of {full['image_size']} px, batch {full['batch_size']}; seeds done: "
                    f"{sorted(results)} of {seeds}.\n\n" + seeds_table(results))
        with open(os.path.join(output_dir, "results.json"), "w", encoding="utf-8") as f:
            json.dump({"budget": full, "seeds": seeds, "rows": {str(k): v for k, v in results.items()}}, f, indent=1)
        plot_seed_curves(collect_curves([output_dir]), method_labels(results), os.path.join(output_dir, "curves.png"))
    print(seeds_table(results), flush=True)
    return results


def collect_results(dirs):
    """Merge the results.json of several comparison runs (of one budget) into seed -> rows, for `seeds_table`.

    Each dir is a `run_seeds` output (rows per seed) or a `run_comparison` output (one seed). A method run
    twice with the same seed keeps the later dir's row. Raises CompareError for a missing file or a budget that
    differs from the first dir's.
    """
    results, budget = {}, None
    for folder in dirs:
        path = os.path.join(folder, "results.json")
        if not os.path.isfile(path):
            raise CompareError(f"no results.json in {folder}")
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
        if budget is None:
            budget = saved["budget"]
        elif saved["budget"] != budget:
            raise CompareError(f"{folder} was run with another budget ({saved['budget']}) than {dirs[0]} "
                               f"({budget}): tabulate one budget at a time")
        per_seed = saved["rows"] if isinstance(saved["rows"], dict) else {str(saved["seed"]): saved["rows"]}
        for seed, rows in per_seed.items():
            merged = {row["method"]: row for row in results.get(int(seed), [])}
            merged.update({row["method"]: row for row in rows})
            results[int(seed)] = list(merged.values())
    return results, budget


def collect_curves(dirs):
    """AP curves of the runs `collect_results` merges: seed -> method -> [(epoch, AP), ...] (later dir wins).

    A `run_comparison` dir keeps them in its results.json, a `run_seeds` dir in ``seed<k>/results.json``; a run
    without them is left out.
    """
    curves = {}
    for folder in dirs:
        with open(os.path.join(folder, "results.json"), encoding="utf-8") as f:
            saved = json.load(f)
        runs = [saved] if "curves" in saved else []
        for seed in (saved["rows"] if isinstance(saved["rows"], dict) else {}):
            path = os.path.join(folder, f"seed{seed}", "results.json")
            if os.path.isfile(path):
                with open(path, encoding="utf-8") as f:
                    runs.append(json.load(f))
        for run in runs:
            for method, curve in run["curves"].items():
                curves.setdefault(int(run["seed"]), {})[method] = [(e + 1, stats[0]) for e, stats in curve["evals"]]
    return curves


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


def parse_sweep(items):
    """['1x=dirA,dirB', '3x=dirC'] -> [('1x', ['dirA', 'dirB']), ('3x', ['dirC'])]; ValueError naming a bad item."""
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


def plot_curves(runs, path):
    """PNG with the training loss vs iteration and the mAP vs epoch of every method."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax_loss, ax_map) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, run in runs.items():
        loss = run["parsed"]["loss"]
        if loss:
            ax_loss.plot([e * n + s + 1 for e, s, n, _ in loss], [v for *_, v in loss], label=run["label"])
        evals = run["parsed"]["evals"]
        if evals:
            ax_map.plot([e + 1 for e, _ in evals], [100 * stats[0] for _, stats in evals], marker="o",
                        label=run["label"])
    ax_loss.set(xlabel="iteration", ylabel="training loss (each method's own total)", title="loss")
    ax_map.set(xlabel="epoch", ylabel="COCO AP (%)", title="AP@[.5:.95] on the val split")
    for ax in (ax_loss, ax_map):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # a run stopped before its first evaluation has no AP curve
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------- running

def resume_point(ckpt_dir):
    """Where a method's training can go on from: its checkpoints under `ckpt_dir` (``<ckpt_dir>/<config
    name>/<epoch index>.pdparams`` with its ``.pdopt``, as tools/train.py saves them every snapshot_epoch).

    Returns:
        ('finished', path) when model_final is there, ('epoch', path, epochs_done) for the latest epoch
        checkpoint, or None; paths without the extension (tools/train.py's -r).
    """
    latest = None
    for sub in sorted(os.listdir(ckpt_dir)) if os.path.isdir(ckpt_dir) else ():
        folder = os.path.join(ckpt_dir, sub)
        names = set(os.listdir(folder)) if os.path.isdir(folder) else set()
        if {"model_final.pdparams", "model_final.pdopt"} <= names:
            return ("finished", os.path.join(folder, "model_final"))
        for name in names:
            stem = name[:-len(".pdparams")]
            if name.endswith(".pdparams") and stem.isdigit() and f"{stem}.pdopt" in names:
                if latest is None or int(stem) + 1 > latest[2]:
                    latest = ("epoch", os.path.join(folder, stem), int(stem) + 1)
    return latest


def train_method(method, budget, output_dir, seed, dataset_dir, threads=1, config_dir=CONFIG_DIR,
                 overrides=(), stop_stalled=0, poll_seconds=30.0, resume=False):
    """Train one method with tools/train.py in a subprocess; returns {'ok', 'parsed', 'log', 'config'} (and
    'stopped', a reason, when the run was stopped).

    With `stop_stalled` (iterations, 0 = off) the log is read every `poll_seconds`; once the run has logged that
    many iterations and `stalled_regression` flags a term, the run is stopped (not ok): it would only spend
    its budget on a detector without box regression.

    With `resume`, an earlier call's run in the same folder goes on from its latest checkpoint (`resume_point`;
    the log is appended to) or, if it finished, is read instead of trained again. The resumed run continues
    the schedule and the optimizer's state, but draws other batches than the uninterrupted run would have
    (ppdet's resume restarts the data order and the random state), so it is an equally valid run, not the same
    one. CompareError if that run was made with another set-up (config, seed, data or overrides).
    """
    run_dir = os.path.join(output_dir, method)
    os.makedirs(run_dir, exist_ok=True)
    config = os.path.join(run_dir, "config.yml")
    text = derived_config(method, budget, config_dir)
    log = os.path.join(run_dir, "train.log")
    ckpt_dir = os.path.join(run_dir, "ckpt")
    cmd = [sys.executable, TRAIN_TOOL, "-c", config, "--eval", "--seed", str(seed), "--output_dir", ckpt_dir,
           "-o", *dataset_overrides(budget, dataset_dir), *overrides]
    point = None
    if resume:
        _check_same_run(run_dir, config, text, cmd[2:])
        point = resume_point(ckpt_dir) if os.path.isfile(log) else None
    if point and point[0] == "finished":
        print(f"compare: {method} finished earlier ({point[1]}); reading {log}", flush=True)
        return {"ok": True, "returncode": 0, "parsed": _read_log(log), "log": log, "config": config}
    with open(config, "w", encoding="utf-8") as f:
        f.write(text)
    with open(os.path.join(run_dir, "command.json"), "w", encoding="utf-8") as f:
        json.dump(cmd[2:], f, indent=1)
    if point:
        cmd += ["-r", point[1]]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    print(f"compare: training {method}: {' '.join(cmd)}", flush=True)
    stopped = None
    with open(log, "a" if point else "w", encoding="utf-8") as out:
        if point:
            # (on a line of its own: the killed run may have left half a line)
            out.write(f"\ncompare: resumed after epoch {point[2]} from {point[1]}\n")
            out.flush()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT, env=env)
        while stop_stalled and stopped is None:
            try:
                proc.wait(timeout=poll_seconds)
                break
            except subprocess.TimeoutExpired:
                pass
            parsed = _read_log(log)
            done = logged_iterations(parsed)
            stalled = stalled_regression(parsed["regression"]) if done >= stop_stalled else []
            if stalled:
                stopped = f"regression stalled ({', '.join(stalled)}) at iteration {done}"
                print(f"compare: stopping {method}: {stopped}", flush=True)
                proc.terminate()
        rc = proc.wait()
    run = {"ok": rc == 0 and stopped is None, "returncode": rc, "parsed": _read_log(log), "log": log,
           "config": config}
    if stopped:
        run["stopped"] = stopped
    return run


def _check_same_run(run_dir, config, text, args):
    """CompareError unless the run in `run_dir` (if any) was made with this config text and these train.py
    arguments (``command.json``; runs older than that file are checked by their config only)."""
    if os.path.isfile(config):
        with open(config, encoding="utf-8") as f:
            if f.read() != text:
                raise CompareError(f"cannot resume {run_dir}: its config.yml was written for another budget or "
                                   f"method file; use the same arguments as that run, or another --output_dir")
    saved = os.path.join(run_dir, "command.json")
    if os.path.isfile(saved):
        with open(saved, encoding="utf-8") as f:
            before = json.load(f)
        if before != args:
            diff = next((f"{a!r} then, {b!r} now" for a, b in zip(before, args) if a != b),
                        f"{len(before)} arguments then, {len(args)} now")
            raise CompareError(f"cannot resume {run_dir}: it was trained with other arguments ({diff}); use the "
                               f"same seed, dataset and -o overrides as that run, or another --output_dir")


def _read_log(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return parse_train_log(f.read())


def run_comparison(output_dir, methods="all", budget=None, seed=0, threads=1, dataset_dir=None,
                   config_dir=CONFIG_DIR, overrides=(), stop_stalled=0, resume=False):
    """Train every method of `methods` under `budget` and seed; write results.md/.json and curves.png.

    Args:
        output_dir (str): where everything goes.
        methods (str|list): names from METHODS, comma-separated, or 'all'.
        budget (dict|None): default_budget() keys (missing ones take the defaults).
        seed (int): passed to every training run (--seed).
        threads (int): OMP_NUM_THREADS of each run (they run one after another).
        dataset_dir (str|None): where the synthetic dataset is generated (default <output_dir>/dataset).
        overrides (list[str]): extra ``key=value`` overrides passed to every run.
        stop_stalled (int): stop a run whose box regression has not trained after this many iterations
            (`train_method`; 0 = never).
        resume (bool): go on with an earlier call's runs in `output_dir` (same arguments) from their latest
            checkpoints; methods that finished are read, not trained again (`train_method`).
    Returns:
        list of table rows (dicts), in method order.
    """
    names = parse_methods(methods)
    full = default_budget()
    full.update(budget or {})
    check_budget(full)
    os.makedirs(output_dir, exist_ok=True)
    dataset_dir = dataset_dir or os.path.join(output_dir, "dataset")
    iterations = full["epochs"] * (full["train_images"] // full["batch_size"])
    if isinstance(stop_stalled, bool) or not isinstance(stop_stalled, int) or stop_stalled < 0:
        raise ValueError(f"stop_stalled must be an int >= 0 (iterations; 0 = off), got {stop_stalled!r}")
    runs, rows = {}, []
    tic = time.time()
    for name in names:
        run = train_method(name, full, output_dir, seed, dataset_dir, threads, config_dir, overrides, stop_stalled,
                           resume=resume)
        run["label"] = METHODS[name][1]
        runs[name] = run
        row = {"method": name, "label": run["label"], "ok": run["ok"], **summarize_run(run["parsed"], iterations)}
        if run["parsed"]["resumed"]:
            row["resumed"] = run["parsed"]["resumed"]
        if run.get("stopped"):
            row.update(stopped=run["stopped"], iterations=logged_iterations(run["parsed"]))
        rows.append(row)
        _write_reports(output_dir, rows, runs, full, seed, names)
        if not run["ok"] and not run.get("stopped"):
            print(f"compare: {name} failed (exit status {run['returncode']}); see {run['log']}", flush=True)
        if row["stalled"]:
            print(f"compare: WARNING: {name}'s box-regression loss ({', '.join(row['stalled'])}) did not fall: its "
                  f"regression branch did not train, so its AP is not the method's; see {run['log']}", flush=True)
    print(f"compare: {len(names)} methods in {time.time() - tic:.0f} s -> {output_dir}/results.md", flush=True)
    print(markdown_table(rows), flush=True)
    return rows


def _write_reports(output_dir, rows, runs, budget, seed, names):
    """Rewrite the reports after every method, so a long run can be read while it goes on."""
    header = (f"Budget: {budget['epochs']} epochs, {budget['train_images']} train / {budget['val_images']} val "
              f"images of {budget['image_size']} px, batch {budget['batch_size']}, seed {seed}; "
              f"methods done: {len(rows)} of {len(names)}.\n\n")
    with open(os.path.join(output_dir, "results.md"), "w", encoding="utf-8") as f:
        f.write(header + markdown_table(rows))
    with open(os.path.join(output_dir, "results.json"), "w", encoding="utf-8") as f:
        json.dump({"budget": budget, "seed": seed, "rows": rows,
                   "curves": {k: {"loss": v["parsed"]["loss"], "evals": v["parsed"]["evals"]}
                              for k, v in runs.items()}}, f, indent=1)
    plot_curves(runs, os.path.join(output_dir, "curves.png"))

"""Train several label-assignment methods under one budget and compare them (the library of tools/compare.py).

- `catalogue`: the methods, variants and groups (each a config in ``benchmarks/configs/``);
- `launch`: one method's run (its derived config, tools/train.py in a subprocess, stop-stalled, resume);
- `records`: a run's numbers, from the ``metrics.json`` tools/train.py writes, and its table row;
- `results`: saved results (``results.json``, experiment record files ``docs/results/<experiment>.jsonl``);
- `tables`, `plots`: the Markdown tables and PNG curves;
- here: `run_comparison` (every method for one seed) and `run_seeds` (that for several seeds).

Outputs in ``output_dir``: ``results.md`` (the table), ``results.json`` (rows and curves), ``curves.png``
(loss vs iteration, mAP vs epoch), and per method its run folder (`launch`).
"""
import json
import os
import time

from . import launch, plots, records, results, tables
from .catalogue import CONFIG_DIR, METHODS, parse_methods
from .errors import CompareError  # noqa: F401  (the error tools/compare.py reports)


def _full_budget(budget):
    full = launch.default_budget()
    full.update(budget or {})
    return full


def run_comparison(output_dir, methods="all", budget=None, seed=0, threads=1, dataset_dir=None,
                   config_dir=CONFIG_DIR, overrides=(), stop_stalled=0, resume=False, record=None):
    """Train every method of `methods` under `budget` and seed; write results.md/.json and curves.png.

    Args:
        output_dir (str): where everything goes.
        methods (str|list): names from catalogue.METHODS, comma-separated, or groups ('all', ...).
        budget (dict|None): launch.default_budget() keys (missing ones take the defaults).
        seed (int): passed to every training run (--seed).
        threads (int): OMP_NUM_THREADS of each run (they run one after another).
        dataset_dir (str|None): where the synthetic dataset is generated (default <output_dir>/dataset).
        overrides (list[str]): extra ``key=value`` overrides passed to every run.
        stop_stalled (int): stop a run whose box regression has not trained after this many iterations
            (`launch.train_method`; 0 = never).
        resume (bool): go on with an earlier call's runs in `output_dir` (same arguments) from their latest
            checkpoints; methods that finished are read, not trained again (`launch.train_method`).
        record (str|None): an experiment's record file (``<experiment>.jsonl``): each run that finished or was
            stopped appends its line (`results.experiment_line`) as it ends.
    Returns:
        list of table rows (dicts), in method order.
    """
    names = parse_methods(methods)
    full = _full_budget(budget)
    launch.check_budget(full)
    if isinstance(stop_stalled, bool) or not isinstance(stop_stalled, int) or stop_stalled < 0:
        raise ValueError(f"stop_stalled must be an int >= 0 (iterations; 0 = off), got {stop_stalled!r}")
    experiment = results.experiment_name(record) if record else None
    os.makedirs(output_dir, exist_ok=True)
    dataset_dir = dataset_dir or os.path.join(output_dir, "dataset")
    iterations = full["epochs"] * (full["train_images"] // full["batch_size"])
    runs, rows = {}, []
    tic = time.time()
    for name in names:
        run = launch.train_method(name, full, output_dir, seed, dataset_dir, threads, config_dir, overrides,
                                  stop_stalled, resume=resume)
        run["label"] = METHODS[name][1]
        runs[name] = run
        row = {"method": name, "label": run["label"], "ok": run["ok"], "commit": run["commit"],
               **records.summarize_run(run["metrics"], iterations)}
        if run["resumed"]:
            row["resumed"] = run["resumed"]
        if run.get("stopped"):
            row.update(stopped=run["stopped"], iterations=records.logged_iterations(run["metrics"]))
        rows.append(row)
        _write_reports(output_dir, rows, runs, full, seed, names)
        if not run["ok"] and not run.get("stopped"):
            reason = f": {run['error']}" if run.get("error") else ""
            print(f"compare: {name} failed (exit status {run['returncode']}{reason}); see {run['log']}", flush=True)
        elif record:
            curve = [(epoch + 1, stats[0]) for epoch, stats in run["metrics"]["evals"]]
            line = results.experiment_line(experiment, row, seed, full, curve)
            if results.append_records(record, [line]):
                print(f"compare: {name} (seed {seed}) recorded in {record}", flush=True)
        if row["stalled"]:
            print(f"compare: WARNING: {name}'s box-regression loss ({', '.join(row['stalled'])}) did not fall: its "
                  f"regression branch did not train, so its AP is not the method's; see {run['log']}", flush=True)
    print(f"compare: {len(names)} methods in {time.time() - tic:.0f} s -> {output_dir}/results.md", flush=True)
    print(tables.markdown_table(rows), flush=True)
    return rows


def _budget_line(budget):
    return (f"Budget: {budget['epochs']} epochs, {budget['train_images']} train / {budget['val_images']} val "
            f"images of {budget['image_size']} px, batch {budget['batch_size']}")


def _write_reports(output_dir, rows, runs, budget, seed, names):
    """Rewrite the reports after every method, so a long run can be read while it goes on."""
    with open(os.path.join(output_dir, "results.md"), "w", encoding="utf-8") as f:
        f.write(f"{_budget_line(budget)}, seed {seed}; methods done: {len(rows)} of {len(names)}.\n\n"
                + tables.markdown_table(rows))
    with open(os.path.join(output_dir, "results.json"), "w", encoding="utf-8") as f:
        json.dump({"budget": budget, "seed": seed, "rows": rows,
                   "curves": {k: {"loss": v["metrics"]["loss"], "evals": v["metrics"]["evals"]}
                              for k, v in runs.items()}}, f, indent=1)
    plots.plot_curves(runs, os.path.join(output_dir, "curves.png"))


def run_seeds(output_dir, methods="all", budget=None, seeds=(0, 1), threads=1, dataset_dir=None,
              config_dir=CONFIG_DIR, overrides=(), stop_stalled=0, resume=False, record=None):
    """`run_comparison` once per seed (into ``<output_dir>/seed<k>``, one shared dataset), then
    ``<output_dir>/results.md`` (the seeds table), ``results.json`` and ``curves.png`` over all seeds.

    Returns:
        dict seed -> rows.
    """
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct ints, got {seeds!r}")
    dataset_dir = dataset_dir or os.path.join(output_dir, "dataset")
    full = _full_budget(budget)
    done = {}
    for seed in seeds:
        seed_dir = os.path.join(output_dir, f"seed{seed}")
        done[seed] = run_comparison(seed_dir, methods, budget, seed, threads, dataset_dir, config_dir, overrides,
                                    stop_stalled, resume, record)
        with open(os.path.join(output_dir, "results.md"), "w", encoding="utf-8") as f:
            f.write(f"{_budget_line(full)}; seeds done: {sorted(done)} of {seeds}.\n\n" + tables.seeds_table(done))
        with open(os.path.join(output_dir, "results.json"), "w", encoding="utf-8") as f:
            json.dump({"budget": full, "seeds": seeds, "rows": {str(k): v for k, v in done.items()}}, f, indent=1)
        plots.plot_seed_curves(results.collect_curves([output_dir]), tables.method_labels(done),
                               os.path.join(output_dir, "curves.png"))
    print(tables.seeds_table(done), flush=True)
    return done

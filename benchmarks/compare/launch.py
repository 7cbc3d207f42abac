"""One training run of the comparison: its config, tools/train.py in a subprocess, stopping a run whose box
regression does not train, and going on after an interruption.

A method's run folder ``<output_dir>/<method>/`` holds ``config.yml`` (`derived_config`: ``_BASE_`` = the method's
file, plus the budget), ``launch.json`` (the train.py arguments, the commit of the checkout that trained it, the
epochs after which it was resumed), ``train.log`` (its output) and ``ckpt/config/`` (checkpoints and the
``metrics.json`` the run's numbers are read from).
"""
import json
import os
import re
import subprocess
import sys

import yaml

from . import records
from .catalogue import CONFIG_DIR, config_path
from .errors import CompareError

# The checkout this package is in (benchmarks/compare/ -> ../..): its tools/train.py trains every run.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN_TOOL = os.path.join(REPO_ROOT, "tools", "train.py")
CONFIG_NAME = "config"  # <run dir>/config.yml; ppassign's train saves into <ckpt>/<config name>/
LAUNCH_FILE = "launch.json"
# The schedule every run gets: cosine decay over the budget's epochs after a linear warm-up.
WARMUP_STEPS = 20
WARMUP_START_FACTOR = 0.1
BUDGET_KEYS = ("epochs", "train_images", "val_images", "image_size", "batch_size", "eval_interval")
MIN_IMAGE_SIZE = 64  # 3 FPN levels down to stride 32


def default_budget():
    """The small CPU budget: all six methods together in well under an hour on 2 cores (docs/tools.md)."""
    return {"epochs": 8, "train_images": 192, "val_images": 48, "image_size": 160, "batch_size": 8,
            "eval_interval": 2}


def check_budget(budget):
    """ValueError naming the first budget entry that is not a positive int (image_size also >= 64)."""
    for key in BUDGET_KEYS:
        value = budget.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"budget {key} must be a positive int, got {value!r}")
    if budget["image_size"] < MIN_IMAGE_SIZE:
        raise ValueError(f"budget image_size must be >= {MIN_IMAGE_SIZE} (3 FPN levels down to stride 32), got "
                         f"{budget['image_size']}")
    if budget["train_images"] < budget["batch_size"]:
        raise ValueError(f"budget train_images ({budget['train_images']}) must be >= batch_size "
                         f"({budget['batch_size']}): the reader drops the last incomplete batch")


def derived_config(method, budget, config_dir=CONFIG_DIR):
    """The YAML text of a method's run config: its config file as _BASE_, plus the budget's schedule.

    The cosine schedule's max_epochs follows the budget's epochs, so every method decays to the same end.
    (The dataset part of the budget is passed as -o overrides: see `dataset_overrides`.)
    """
    base = config_path(method, config_dir)
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
                                        {"name": "LinearWarmup", "start_factor": WARMUP_START_FACTOR,
                                         "steps": WARMUP_STEPS}]},
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


def run_files(output_dir, method):
    """The files of a method's run folder (module docstring): name -> path."""
    run_dir = os.path.join(output_dir, method)
    ckpt = os.path.join(run_dir, "ckpt")
    return {"dir": run_dir, "config": os.path.join(run_dir, f"{CONFIG_NAME}.yml"),
            "launch": os.path.join(run_dir, LAUNCH_FILE), "log": os.path.join(run_dir, "train.log"), "ckpt": ckpt,
            "metrics": os.path.join(ckpt, CONFIG_NAME, records.METRICS_FILE)}


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


def current_commit(repo=REPO_ROOT):
    """Short sha of the checkout's HEAD, with "-dirty" when tracked files differ from it; None outside git."""
    try:
        sha = subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
        changed = subprocess.run(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"],
                                 capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{sha}-dirty" if changed else sha


def train_method(method, budget, output_dir, seed, dataset_dir, threads=1, config_dir=CONFIG_DIR,
                 overrides=(), stop_stalled=0, poll_seconds=30.0, resume=False):
    """Train one method with tools/train.py in a subprocess.

    With `stop_stalled` (iterations, 0 = off) the run's metrics.json is read every `poll_seconds`; once the run
    has logged that many iterations and `records.stalled_regression` flags a term, the run is stopped (not ok):
    it would only spend its budget on a detector without box regression.

    With `resume`, an earlier call's run in the same folder goes on from its latest checkpoint (`resume_point`;
    the log is appended to) or, if it finished, is read instead of trained again. The resumed run continues
    the schedule and the optimizer's state, but draws other batches than the uninterrupted run would have
    (ppdet's resume restarts the data order and the random state), so it is an equally valid run, not the same
    one. CompareError if that run was made with another set-up (config, seed, data or overrides).

    Returns:
        {'ok', 'returncode', 'metrics' (records.run_metrics), 'log', 'config', 'commit', 'resumed' [epochs after
        which it went on]}, and 'stopped' (a reason) when the run was stopped or 'error' (`failure_reason`) when
        it failed.
    """
    files = run_files(output_dir, method)
    os.makedirs(files["dir"], exist_ok=True)
    text = derived_config(method, budget, config_dir)
    cmd = [sys.executable, TRAIN_TOOL, "-c", files["config"], "--eval", "--seed", str(seed), "--output_dir",
           files["ckpt"], "-o", *dataset_overrides(budget, dataset_dir), *overrides]
    point, earlier = None, {}
    if resume:
        earlier = _check_same_run(files, text, cmd[2:])
        point = resume_point(files["ckpt"]) if os.path.isfile(files["log"]) else None
    if point and point[0] == "finished":
        print(f"compare: {method} finished earlier ({point[1]}); reading {files['metrics']}", flush=True)
        return _result(files, earlier, returncode=0)
    with open(files["config"], "w", encoding="utf-8") as f:
        f.write(text)
    launch = {"command": cmd[2:], "commit": _joined_commit(earlier.get("commit") if point else None),
              "resumed": (earlier.get("resumed", []) + [point[2]]) if point else []}
    with open(files["launch"], "w", encoding="utf-8") as f:
        json.dump(launch, f, indent=1)
    if point:
        cmd += ["-r", point[1]]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    print(f"compare: training {method}: {' '.join(cmd)}", flush=True)
    stopped = None
    with open(files["log"], "a" if point else "w", encoding="utf-8") as out:
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
            stopped = stall_reason(records.read_run(files["metrics"]), stop_stalled)
            if stopped:
                print(f"compare: stopping {method}: {stopped}", flush=True)
                proc.terminate()
        rc = proc.wait()
    return _result(files, launch, returncode=rc, stopped=stopped)


def stall_reason(metrics, after_iterations):
    """Why a run should stop ("regression stalled (<terms>) at iteration <n>"), or None: it has logged
    `after_iterations` iterations and `records.stalled_regression` flags a term."""
    done = records.logged_iterations(metrics)
    stalled = records.stalled_regression(metrics["regression"]) if done >= after_iterations else []
    return f"regression stalled ({', '.join(stalled)}) at iteration {done}" if stalled else None


def _joined_commit(earlier):
    """This checkout's commit; "<earlier>+<now>" when a resumed run's first part was trained at another one."""
    now = current_commit()
    return now if earlier in (None, now) else f"{earlier}+{now}"


def failure_reason(log):
    """The last ``error: <reason>`` line a training wrote to its log (tools/train.py's one-line errors, e.g.
    "training diverged: ..."), as ``<reason>``; None when there is none (a crash: the log's end tells more)."""
    try:
        with open(log, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 65536))
            tail = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    reasons = [line[len("error: "):].strip() for line in tail.splitlines() if line.startswith("error: ")]
    return reasons[-1] if reasons else None


def _result(files, launch, returncode, stopped=None):
    result = {"ok": returncode == 0 and stopped is None, "returncode": returncode,
              "metrics": records.read_run(files["metrics"]), "log": files["log"], "config": files["config"],
              "commit": launch.get("commit"), "resumed": launch.get("resumed", [])}
    if stopped:
        result["stopped"] = stopped
    elif returncode != 0:
        result["error"] = failure_reason(files["log"])
    return result


def _check_same_run(files, text, args):
    """CompareError unless the run in the folder of `files` (if any) was made with this config text and these
    train.py arguments; returns its launch.json ({} when there is none)."""
    if os.path.isfile(files["config"]):
        with open(files["config"], encoding="utf-8") as f:
            if f.read() != text:
                raise CompareError(f"cannot resume {files['dir']}: its config.yml was written for another budget "
                                   f"or method file; use the same arguments as that run, or another --output_dir")
    if not os.path.isfile(files["launch"]):
        return {}
    with open(files["launch"], encoding="utf-8") as f:
        launch = json.load(f)
    before = launch["command"]
    if before != args:
        diff = next((f"{a!r} then, {b!r} now" for a, b in zip(before, args) if a != b),
                    f"{len(before)} arguments then, {len(args)} now")
        raise CompareError(f"cannot resume {files['dir']}: it was trained with other arguments ({diff}); use the "
                           f"same seed, dataset and -o overrides as that run, or another --output_dir")
    return launch

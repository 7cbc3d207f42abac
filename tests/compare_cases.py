"""Shared by tests/benchmarks/compare/ and tests/tools/test_compare.py: saved results (a results.json folder, a
record file's lines) and a stand-in for tools/train.py that benchmarks.compare.launch runs instead.

The stand-in takes train.py's arguments, logs one line per step and keeps
``<--output_dir>/<config name>/metrics.json`` as ppassign.engine.record does (rewritten at every step, one
evaluation after every epoch, the entries up to the checkpoint's epoch kept on ``-r``), with a flat or falling
``loss_box``, or (box "diverged") ends at once with tools/train.py's one-line error; it prints its arguments
last.
"""
import json

from benchmarks.compare import launch


def saved_run(folder, budget, rows_by_seed):
    """A `run_seeds` results folder without curves: {seed: rows}."""
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps({"budget": budget, "rows": rows_by_seed}))
    return str(folder)


def record_line(method, seed, ap, budget=None, **extra):
    """A record file's line (docs/results/README.md) of experiment 'e'."""
    line = {"experiment": "e", "method": method, "label": method.upper(), "seed": seed,
            "budget": budget or launch.default_budget(), "commit": "abc1234", "AP": ap, "AP50": ap, "AP75": ap,
            "APs": ap, "APm": ap, "APl": -1.0, "curve": [[4, ap / 2], [8, ap]], "sec_per_iter": 1.0,
            "iterations": 100, "train_seconds": 100.0, "stalled": [], "stopped": None, "resumed": []}
    line.update(extra)
    return line


def record_file(path, *lines):
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return str(path)

FAKE_TRAIN = """\
import json, os, sys, time
args = sys.argv[1:]
out = args[args.index("--output_dir") + 1]
name = os.path.splitext(os.path.basename(args[args.index("-c") + 1]))[0]
path = os.path.join(out, name, "metrics.json")
epochs, steps, box, pause = {epochs}, {steps}, {box!r}, {pause}
start = int(os.path.basename(args[args.index("-r") + 1])) + 1 if "-r" in args else 0
record = {{"config": name, "seed": 0, "epochs": epochs, "steps_per_epoch": steps, "train": [], "evals": [],
          "seconds": None, "finished": False, "resumed_after_epoch": start if "-r" in args else None}}
if start:
    with open(path) as f:
        earlier = json.load(f)
    record["train"] = [e for e in earlier["train"] if e["epoch"] < start]
    record["evals"] = [e for e in earlier["evals"] if e["epoch"] <= start]


def save():
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(record, f)
    os.replace(path + ".tmp", path)


if box == "diverged":
    print("error: training diverged: the loss is nan at 2 logged steps in a row (epoch 0, step 1)",
          file=sys.stderr, flush=True)
    sys.exit(2)
for epoch in range(start, epochs):
    for step in range(steps):
        i = epoch * steps + step
        value = 0.93 if box == "flat" else 0.93 * (1 - i / 400)
        record["train"].append({{"epoch": epoch, "step": step, "iteration": i + 1, "loss": 2.0,
                                "terms": {{"loss_cls": 0.5, "loss_box": value}}, "batch_cost": 0.01}})
        save()
        print(f"Epoch: [{{epoch}}] [{{step}}/{{steps}}] loss_box: {{value:.4f}} loss: 2.0", flush=True)
        time.sleep(pause)
    record["evals"].append({{"epoch": epoch + 1, "iteration": (epoch + 1) * steps,
                            "bbox": [0.1 * (epoch + 1)] + [0.0] * 11}})
    save()
record["seconds"], record["finished"] = 1.5, True
save()
print("args:", " ".join(args))
"""


def fake_trainer(tmp_path, monkeypatch, box="falling", epochs=1, steps=1, pause=0.0):
    """Make launch.train_method run the stand-in (module docstring) instead of tools/train.py."""
    script = tmp_path / "fake_train.py"
    script.write_text(FAKE_TRAIN.format(epochs=epochs, steps=steps, box=box, pause=pause))
    monkeypatch.setattr(launch, "TRAIN_TOOL", str(script))

"""Side-by-side cost of ppassign's assigners and PaddleDetection's, for tools/bench_assign.py.

A case is (assigner, batch size B, objects per image n, scene). Besides time and peak memory, each case
counts what a GPU user pays per call whatever the device: Paddle operators dispatched and device-to-host copies
(`benchmarks.profiling`). Scenes (`make_inputs`): "trained" (predicted boxes around the anchor points, as late in
training), "early" (boxes anywhere, as at the start of training: most alignment metrics are exactly 0),
"crowd" (trained predictions, objects of 4-60 px: the dense scenes of issue 32) and "ties" (early predictions,
objects on a 16 px lattice: centres exactly between anchors, so top-k ties need full rows or levels).

Every (case, implementation) runs in a fresh subprocess so that its peak memory is its own: RSS growth over
the process's RSS just before the first (warm-up, untimed) call, during it and the timed calls, on CPU
(sampled every 2 ms by a thread),
`paddle.device.cuda.max_memory_allocated` on GPU. The parent compares the outputs of both implementations
on identical seeded inputs.
"""
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

IMAGE_SIZE = 640
STRIDES = (8, 16, 32)
NUM_CLASSES = 80
BATCH = 8
NUM_GTS = (10, 100, 300, 1000, 2000)
# Few objects per image at growing batch sizes: where per-image Python loops and host copies would show.
FEW_GTS = (2, 8)
BATCHES = (1, 8, 32)
EARLY_GTS = (100, 300)
# Crowded images (xView-like, Ultralytics #25990: up to ~5,000 objects per image), small objects.
CROWD_GTS = (1000, 2000, 5000)
CROWD_BATCHES = (2, 8)
CROWD_MAX_SIZE = 60
# Objects with integer multiples of TIE_LATTICE px as sides: centres fall exactly between anchors of stride 8.
TIE_LATTICE = 16
CASE_GROUPS = ("dense", "early", "few", "crowd", "ties")
ASSIGNERS = ("atss", "tal", "simota")
IMPLS = ("ppassign", "ppdet")
# Rough bytes per (image, GT, anchor) that ppdet's assigners keep alive at their peak: the [B, n, k, L] float
# one-hot (k = 9 per level for ATSS, 13 for TAL) dominates. Used only to skip a case that cannot fit.
PPDET_BYTES_PER_PAIR = {"atss": 4 * (9 + 12), "tal": 4 * (13 + 12), "simota": 4 * 4 * NUM_CLASSES}
# SimOTA is called image by image (YOLOX's head loops over the batch): its peak is one image's, not the batch's.
PER_IMAGE = ("simota",)


def make_inputs(batch, num_gts, image_size=IMAGE_SIZE, strides=STRIDES, num_classes=NUM_CLASSES, seed=0,
                predictions="trained"):
    """Seeded dense-scene inputs shared by both implementations.

    predictions (the scene): "trained" (boxes around the anchor points, scores in (0.01, 0.99)), "early" (boxes
    of 2-32 px half-size anywhere in the image and scores below 0.05: most metrics are exactly 0), "crowd"
    (trained, objects of 4 to CROWD_MAX_SIZE px) or "ties" (early, object corners on a TIE_LATTICE px lattice).

    Returns:
        dict of numpy arrays: anchors [L, 4], points [L, 2], counts (list), labels [B, n, 1] int32,
        boxes [B, n, 4], mask [B, n, 1], scores [B, L, C], pred [B, L, 4].
    """
    rng = np.random.default_rng(seed)
    anchors, points, counts = [], [], []
    for stride in strides:
        size = int(np.ceil(image_size / stride))
        centres = (np.arange(size) + 0.5) * stride
        cy, cx = np.meshgrid(centres, centres, indexing="ij")
        pts = np.stack([cx.ravel(), cy.ravel()], -1)
        half = 2.5 * stride  # PP-YOLOE's grid_cell_scale 5.0
        anchors.append(np.concatenate([pts - half, pts + half], -1))
        points.append(pts)
        counts.append(len(pts))
    points = np.concatenate(points).astype("float32")
    # object sizes log-uniform from 4 px to half the image: dense scenes hold many small objects
    largest = CROWD_MAX_SIZE if predictions == "crowd" else image_size / 2
    wh = np.exp(rng.uniform(np.log(4), np.log(largest), size=(batch, num_gts, 2)))
    xy = rng.uniform(0, image_size, size=(batch, num_gts, 2)) - wh / 2
    if predictions == "ties":
        xy, wh = np.round(xy / TIE_LATTICE) * TIE_LATTICE, np.maximum(np.round(wh / TIE_LATTICE), 1) * TIE_LATTICE
    if predictions in ("early", "ties"):
        half = rng.uniform(2, 32, size=(batch, len(points), 2))
        centres = rng.uniform(0, image_size, size=(batch, len(points), 2))
        scores = rng.uniform(0.0, 0.05, size=(batch, len(points), num_classes))
    else:
        half = rng.uniform(4, image_size / 4, size=(batch, len(points), 2))
        centres = points[None] + rng.normal(0, 8, size=(batch, len(points), 2))
        scores = rng.uniform(0.01, 0.99, size=(batch, len(points), num_classes))
    return {
        "anchors": np.concatenate(anchors).astype("float32"), "points": points, "counts": counts,
        "labels": rng.integers(0, num_classes, size=(batch, num_gts, 1)).astype("int32"),
        "boxes": np.concatenate([xy, xy + wh], -1).astype("float32"),
        "mask": np.ones((batch, num_gts, 1), "float32"),
        "scores": scores.astype("float32"),
        "pred": np.concatenate([centres - half, centres + half], -1).astype("float32"),
    }


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _PeakSampler(threading.Thread):
    """Samples this process's RSS every few ms (ru_maxrss cannot be reset between phases)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak, self._done = _rss_bytes(), threading.Event()

    def run(self):
        while not self._done.wait(0.002):
            self.peak = max(self.peak, _rss_bytes())

    def stop(self):
        self._done.set()
        self.join()
        return max(self.peak, _rss_bytes())


def run_case(assigner, impl, num_gts, repeats, out_path, batch=BATCH, predictions="trained", seed=0):
    """Body of one subprocess: time `repeats` calls, record peak memory, count operators and host copies of
    one more call, save the outputs."""
    import paddle
    import ppassign
    from benchmarks.profiling import profile_call
    from ppdet.modeling.assigners.atss_assigner import ATSSAssigner as PpdetATSS
    from ppdet.modeling.assigners.task_aligned_assigner import TaskAlignedAssigner as PpdetTAL
    from ppdet.modeling.assigners.simota_assigner import SimOTAAssigner as PpdetSimOTA

    gpu = paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    paddle.set_device("gpu" if gpu else "cpu")
    data = make_inputs(batch, num_gts, seed=seed, predictions=predictions)
    t = {k: paddle.to_tensor(v) for k, v in data.items() if k != "counts"}
    if assigner == "atss":
        layer = (ppassign.ATSSAssigner if impl == "ppassign" else PpdetATSS)(topk=9, num_classes=NUM_CLASSES)
        call = lambda: layer(t["anchors"], data["counts"], t["labels"], t["boxes"], t["mask"], NUM_CLASSES,
                             pred_bboxes=t["pred"])
    elif assigner == "simota":
        # YOLOX's head: one call per image with (x, y, stride, stride) anchors and its use_vfl=False costs
        stride = np.repeat(np.float32(STRIDES), data["counts"])[:, None]
        centres = paddle.to_tensor(np.concatenate([data["points"], stride, stride], 1))
        layer = (ppassign.assigners.SimOTAAssigner if impl == "ppassign" else PpdetSimOTA)(
            num_classes=NUM_CLASSES, use_vfl=False)

        def call():
            out = [layer(t["scores"][b], centres, t["pred"][b], t["boxes"][b], t["labels"][b]) for b in range(batch)]
            return tuple(paddle.to_tensor(np.stack([o[i] for o in out])) for i in (1, 3, 2))
    else:
        layer = (ppassign.TaskAlignedAssigner if impl == "ppassign" else PpdetTAL)(topk=13, alpha=1.0, beta=6.0)
        call = lambda: layer(t["scores"], t["pred"], t["points"], data["counts"], t["labels"], t["boxes"],
                             t["mask"], NUM_CLASSES)
    sync = paddle.device.synchronize if gpu else (lambda: None)
    if gpu:
        paddle.device.cuda.reset_max_memory_allocated()
        base = paddle.device.cuda.memory_allocated()
    else:
        base = _rss_bytes()                  # before the first call: freed memory stays in the process after it
        sampler = _PeakSampler()
        sampler.start()
    call()                                   # warm-up (untimed): first-call allocations and one-time probes
    times, out = [], None
    for _ in range(repeats):
        out = None                           # the previous call's outputs are not held during the next one
        sync()
        start = time.perf_counter()
        out = call()
        sync()
        times.append(time.perf_counter() - start)
    peak = (paddle.device.cuda.max_memory_allocated() if gpu else sampler.stop()) - base
    _, profile = profile_call(call)          # operators and host copies of one steady-state call
    np.savez(out_path, labels=out[0].numpy(), bboxes=out[1].numpy(), scores=out[2].numpy())
    return {"median_s": float(np.median(times)), "peak_bytes": int(peak), "device": "gpu" if gpu else "cpu",
            "operators": profile.operators, "host_copies": profile.host_copies, "shape_syncs": profile.shape_syncs}


def _available_bytes():
    import psutil
    return psutil.virtual_memory().available


def _spawn(assigner, impl, case, repeats, out_path, timeout):
    batch, num_gts, predictions = case
    cmd = [sys.executable, "-m", "benchmarks.assign_bench", assigner, impl, str(num_gts), str(repeats), out_path,
           str(batch), predictions]
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, GLOG_minloglevel="2",
               PYTHONPATH=os.pathsep.join([repo] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["killed (out of memory?)"])[-1]
        return {"error": f"exit {proc.returncode}: {last[:120]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _same(path_a, path_b):
    a, b = np.load(path_a), np.load(path_b)
    return (np.array_equal(a["labels"], b["labels"]) and np.array_equal(a["bboxes"], b["bboxes"])
            and np.allclose(a["scores"], b["scores"], rtol=0, atol=1e-5))


def cases(groups=CASE_GROUPS, num_gts=NUM_GTS, batches=BATCHES, crowd_gts=CROWD_GTS, crowd_batches=CROWD_BATCHES):
    """(B, n, scene) cases of the chosen groups: dense scenes at B=8, early-training predictions, few objects
    per image at every batch size in `batches` (with ties too), crowded scenes of small objects."""
    out = []
    if "dense" in groups:
        out += [(BATCH, n, "trained") for n in num_gts]
    if "early" in groups:
        out += [(BATCH, n, "early") for n in EARLY_GTS]
    if "few" in groups:
        out += [(b, n, "trained") for b in batches for n in FEW_GTS]
    if "ties" in groups:
        out += [(b, n, "ties") for b in batches for n in FEW_GTS]
    if "crowd" in groups:
        out += [(b, n, "crowd") for b in crowd_batches for n in crowd_gts]
    return out


def run(case_list, assigners=ASSIGNERS, repeats=3, timeout=900, log=print):
    """Run every (assigner, case); returns a list of row dicts."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for assigner in assigners:
            for case in case_list:
                batch, n, predictions = case
                row = {"assigner": assigner, "batch": batch, "n": n, "predictions": predictions}
                for impl in IMPLS:
                    images = 1 if assigner in PER_IMAGE else batch
                    need = PPDET_BYTES_PER_PAIR[assigner] * images * n * 8400 if impl == "ppdet" else 0
                    if need > 0.8 * _available_bytes():
                        row[impl] = {"error": f"skipped: needs ~{need / 2**30:.1f} GiB, "
                                              f"{_available_bytes() / 2**30:.1f} GiB available"}
                        continue
                    reps = repeats if impl == "ppassign" or n * batch <= 2400 else 1
                    row[impl] = _spawn(assigner, impl, case, reps, os.path.join(tmp, f"{impl}.npz"), timeout)
                    log(f"{assigner} B={batch} n={n} {predictions} {impl}: {row[impl]}")
                both = all("error" not in row[i] for i in IMPLS)
                row["match"] = _same(*(os.path.join(tmp, f"{i}.npz") for i in IMPLS)) if both else None
                rows.append(row)
    return rows


def _fmt_time(r):
    return f"{r['median_s']:.3f}" if "median_s" in r else r["error"]


def _fmt_mem(r):
    return f"{r['peak_bytes'] / 2**20:.0f}" if "peak_bytes" in r else "-"


def _fmt_count(r, key):
    return str(r[key]) if key in r else "-"


def _fmt_copies(r):
    if "host_copies" not in r:
        return "-"
    return f"{r['host_copies']}" + (f" + {r['shape_syncs']} shape" if r["shape_syncs"] else "")


def markdown_table(rows):
    """Rows -> Markdown table with speed-up, operator, host-copy and memory columns."""
    lines = ["| assigner | B | n | scene | ppdet s/call | ppassign s/call | speed-up | ppdet ops | ppassign ops "
             "| ppdet host copies | ppassign host copies | ppdet peak MiB | ppassign peak MiB | memory ratio "
             "| outputs match |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        a, p = r["ppassign"], r["ppdet"]
        speed = f"{p['median_s'] / a['median_s']:.1f}x" if "median_s" in a and "median_s" in p else "-"
        mem = (f"1/{p['peak_bytes'] / max(a['peak_bytes'], 1):.1f}"
               if "peak_bytes" in a and "peak_bytes" in p else "-")
        match = {True: "yes", False: "NO", None: "-"}[r["match"]]
        lines.append(f"| {r['assigner'].upper()} | {r['batch']} | {r['n']} | {r['predictions']} | {_fmt_time(p)} "
                     f"| {_fmt_time(a)} | {speed} | {_fmt_count(p, 'operators')} | {_fmt_count(a, 'operators')} "
                     f"| {_fmt_copies(p)} | {_fmt_copies(a)} | {_fmt_mem(p)} | {_fmt_mem(a)} | {mem} | {match} |")
    return "\n".join(lines)


def plot(rows, path):
    """Time and peak memory against n, log scale, one line per assigner x implementation."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for assigner in sorted({r["assigner"] for r in rows}):
        for impl, style in zip(IMPLS, ("-o", "--s")):
            pts = [(r["n"], r[impl]) for r in rows if r["assigner"] == assigner and "median_s" in r[impl]
                   and r["batch"] == BATCH and r["predictions"] == "trained"]
            if not pts:
                continue
            ns = [n for n, _ in pts]
            axes[0].plot(ns, [x["median_s"] for _, x in pts], style, label=f"{assigner.upper()} {impl}")
            axes[1].plot(ns, [max(x["peak_bytes"], 1) / 2**20 for _, x in pts], style,
                         label=f"{assigner.upper()} {impl}")
    for ax, title in zip(axes, ("median time per call (s)", "peak memory growth (MiB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("GT objects per image (n)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(f"B={BATCH}, {IMAGE_SIZE}x{IMAGE_SIZE}, strides {STRIDES}, C={NUM_CLASSES}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    name, impl_name, n_gts, reps, out_file, batch_size, preds = sys.argv[1:8]
    print(json.dumps(run_case(name, impl_name, int(n_gts), int(reps), out_file, int(batch_size), preds)))

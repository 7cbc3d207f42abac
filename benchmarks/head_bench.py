"""Cost of one training step of the AutoAssign, DW and RetinaNet heads against the batch size, for
tools/bench_heads.py.

What is counted, per step: the head's forward on given FPN features, its loss and ``loss.backward()`` (the
backbone, the neck and the optimizer are left out: they do not depend on the label assignment). The heads are
built by ppdet's ``create`` from the synthetic configs (configs/autoassign/autoassign_synthetic.yml,
configs/dw/dw_synthetic.yml with and without box refinement, configs/retinanet/retinanet_synthetic*.yml: 64
channels, 2-conv towers, strides 8/16/32; RetinaNet with 9 anchors per location) and fed seeded random features
of a 256 px input and 2-8 GT per image, the second image without any GT: padded to the batch's largest count
(PadGT) for the FCOS-style heads, as per-image lists (PaddleDetection's RetinaNet reader) for RetinaNet. The
"ppdet RetinaHead" row is PaddleDetection's own head with its own MaxIoUAssigner, for comparison.

Reported (see benchmarks.profiling): operators dispatched (paddle.profiler), explicit host copies,
data-dependent-shape operators, and the median CPU seconds of a few steps. On a GPU every operator costs launch
time whatever its size, and every host copy or shape sync waits for the device: a head whose counts grow with
B loops over images.

``--before DIR`` runs the same measurement with the ``ppassign`` package of another checkout (e.g. an older
commit in a ``git worktree``), each row in fresh subprocesses alternating with this checkout's, and prints both
side by side. CPU seconds on a machine shared with other jobs are noisy; the counts are exact.
"""
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
# head name -> (config relative to the repository root, -o overrides)
HEADS = {
    "AutoAssign": ("configs/autoassign/autoassign_synthetic.yml", []),
    "DW (refine)": ("configs/dw/dw_synthetic.yml", []),
    "DW (no refine)": ("configs/dw/dw_synthetic.yml", ["DWHead.with_refine=false"]),
    "ppdet RetinaHead (its MaxIoU)": ("configs/swap_examples/retinanet_ppdet_head_synthetic.yml",
                                      ["RetinaHead.bbox_assigner.name=MaxIoUAssigner"]),
    "RetinaNet max-IoU": ("configs/retinanet/retinanet_synthetic.yml", []),
    "RetinaNet top-k": ("configs/retinanet/retinanet_synthetic_topk.yml", []),
    "RetinaNet ATSS": ("configs/retinanet/retinanet_synthetic_atss.yml", []),
    "RetinaNet FCOS rule": ("configs/retinanet/retinanet_synthetic_fcos_rule.yml", []),
    "RetinaNet noisy anchors": ("configs/retinanet/retinanet_synthetic_noisy_anchor.yml", []),
    "RetinaNet HAMBox": ("configs/retinanet/retinanet_synthetic_hambox.yml", []),
}
# The default rows: the FCOS-style heads of the AutoAssign / DW work; `--heads` names the RetinaNet ones.
DEFAULT_HEADS = ("AutoAssign", "DW (refine)", "DW (no refine)")
RETINA_HEADS = tuple(h for h in HEADS if "Retina" in h)
BATCHES = (2, 8, 16)
IMAGE_SIZE = 256
GT_RANGE = (2, 8)  # objects per image (the second image has none)


def build_head(name, root=ROOT):
    """The head of the named synthetic config, in train mode (built by ppdet's create)."""
    import paddle
    from ppassign.engine.config import build_model, load_config
    path, overrides = HEADS[name]
    cfg = load_config(os.path.join(root, path), overrides)
    paddle.seed(0)
    model = build_model(cfg)
    head = model.head if hasattr(model, "head") else model.fcos_head
    head.train()
    return head


def head_shape(head):
    """(input channels, strides, classes) of an FCOS-style head or a RetinaHead."""
    if hasattr(head, "anchor_generator"):
        channels = next(p for p in head.conv_feat.parameters() if p.ndim == 4).shape[1]
        return channels, [int(s) for s in head.anchor_generator.strides], head.num_classes
    return head.in_channels, head.fpn_stride, head.num_classes


def make_batch(head, batch, image_size=IMAGE_SIZE, gt_range=GT_RANGE, seed=0, num_slots=None, lists=False):
    """Seeded features and padded GT for `head`.

    Args:
        num_slots (int | None): GT slots n per image; None: the largest GT count of the batch (as ppdet's PadGT).
        lists (bool): GT as per-image lists instead (gt_bbox [n_i, 4], gt_class [n_i, 1]; no pad_gt_mask).
    Returns:
        feats (list[Tensor[B, in_channels, S/s, S/s]]), targets (dict: gt_bbox [B, n, 4], gt_class [B, n, 1]
        int32, pad_gt_mask [B, n, 1]; image 1 has no GT).
    """
    import paddle
    rng = np.random.default_rng(seed)
    channels, strides, num_classes = head_shape(head)
    feats = [paddle.to_tensor(rng.normal(size=(batch, channels, image_size // s, image_size // s))
                              .astype("float32")) for s in strides]
    counts = rng.integers(gt_range[0], gt_range[1] + 1, size=batch)
    if batch > 1:
        counts[1] = 0
    num_max = int(counts.max()) if num_slots is None else max(int(num_slots), int(counts.max()))
    boxes = np.zeros((batch, num_max, 4), "float32")
    labels = np.zeros((batch, num_max, 1), "int32")
    mask = np.zeros((batch, num_max, 1), "float32")
    for b, count in enumerate(counts):
        wh = rng.uniform(12, image_size / 2, size=(count, 2))
        xy = rng.uniform(0, 1, size=(count, 2)) * (image_size - wh)
        boxes[b, :count] = np.concatenate([xy, xy + wh], -1)
        labels[b, :count, 0] = rng.integers(0, num_classes, size=count)
        mask[b, :count] = 1
    if lists:
        return feats, {"gt_bbox": [paddle.to_tensor(boxes[b, :c]) for b, c in enumerate(counts)],
                       "gt_class": [paddle.to_tensor(labels[b, :c]) for b, c in enumerate(counts)]}
    targets = {"gt_bbox": paddle.to_tensor(boxes), "gt_class": paddle.to_tensor(labels),
               "pad_gt_mask": paddle.to_tensor(mask)}
    return feats, targets


def train_step(head, feats, targets):
    """Forward + loss + backward; returns the total loss (a Tensor: no host copy)."""
    loss = head(feats, targets)["loss"]
    loss.backward()
    return loss


def step_profile(head, batch, image_size=IMAGE_SIZE, seed=0, num_slots=None):
    """CallProfile of one training step of `head` on make_batch's inputs, after one warm-up step.

    Returns:
        (CallProfile, feats, targets).
    """
    from benchmarks.profiling import profile_call
    feats, targets = make_batch(head, batch, image_size, seed=seed, num_slots=num_slots,
                                lists=hasattr(head, "anchor_generator"))
    train_step(head, feats, targets)  # warm-up: first-call caches
    head.clear_gradients()
    _, prof = profile_call(train_step, head, feats, targets)
    head.clear_gradients()
    return prof, feats, targets


def measure(name, batch, repeats=3, root=ROOT):
    """One row: operators, host copies, shape syncs of one step, median s/step of `repeats` more."""
    head = build_head(name, root)
    prof, feats, targets = step_profile(head, batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        train_step(head, feats, targets)
        times.append(time.perf_counter() - start)
        head.clear_gradients()
    return {"head": name, "batch": batch, "operators": prof.operators, "host_copies": prof.host_copies,
            "shape_syncs": prof.shape_syncs, "seconds": statistics.median(times)}


def run(heads=DEFAULT_HEADS, batches=BATCHES, repeats=3, root=ROOT):
    """Rows of every (head, B) in this process."""
    return [measure(name, batch, repeats, root) for name in heads for batch in batches]


def run_elsewhere(checkout, heads, batches, repeats):
    """The same rows measured with the ppassign package (and configs) of `checkout`, in a fresh subprocess."""
    checkout = os.path.abspath(checkout)
    code = ("import json, runpy, sys; sys.path.insert(0, {c!r}); "
            "m = runpy.run_path({f!r}); "
            "print(json.dumps(m['run']({h!r}, {b!r}, {r!r}, {c!r})))").format(
        c=checkout, f=os.path.abspath(__file__), h=list(heads), b=list(batches), r=repeats)
    out = subprocess.run([sys.executable, "-c", code], cwd=checkout, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"measuring {checkout} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare(before, heads=DEFAULT_HEADS, batches=BATCHES, repeats=3, log=None):
    """Rows of `before` (another checkout) and of this one, each (head, B) measured in two fresh subprocesses
    one right after the other, so that both see the same machine load.

    Returns:
        (before rows, after rows).
    """
    old, new = [], []
    for name in heads:
        for batch in batches:
            old += run_elsewhere(before, [name], [batch], repeats)
            new += run_elsewhere(ROOT, [name], [batch], repeats)
            if log:
                log(f"{name} B={batch}: {old[-1]['operators']} -> {new[-1]['operators']} operators")
    return old, new


def markdown_table(after, before=None):
    """Markdown table of the rows; with `before`, both side by side ("before -> after")."""
    def cell(key, row, old, fmt="{}"):
        return fmt.format(row[key]) if old is None else f"{fmt.format(old[key])} -> {fmt.format(row[key])}"

    old_rows = {(r["head"], r["batch"]): r for r in before or []}
    lines = ["| head | B | operators / step | host copies | shape syncs | CPU s / step |",
             "| --- | --- | --- | --- | --- | --- |"]
    for row in after:
        old = old_rows.get((row["head"], row["batch"])) if before else None
        lines.append(f"| {row['head']} | {row['batch']} | {cell('operators', row, old)} | "
                     f"{cell('host_copies', row, old)} | {cell('shape_syncs', row, old)} | "
                     f"{cell('seconds', row, old, '{:.3f}')} |")
    return "\n".join(lines)


def growth(rows):
    """{head: operators at the largest B / operators at the smallest B}."""
    out = {}
    for name in dict.fromkeys(r["head"] for r in rows):
        mine = sorted((r for r in rows if r["head"] == name), key=lambda r: r["batch"])
        out[name] = mine[-1]["operators"] / mine[0]["operators"]
    return out

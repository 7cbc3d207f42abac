"""The library behind ppassign's tools: train, evaluate, export and infer any ppdet YAML config.

Each tool in ``tools/`` is argparse + one call to `main` (which turns a `PipelineError` into one line on stderr
and exit status 2). The functions follow PaddleDetection's conventions: a config is a ppdet YAML (``_BASE_``
lists, ``architecture`` names the model), ``-o key=value`` overrides (dotted keys, YAML values), weights are
``<path>.pdparams`` given without the suffix, exported models are ``model.json|.pdmodel`` + ``model.pdiparams``
+ ``infer_cfg.yml`` (PaddleDetection's deploy format).

Nothing here is specific to one architecture: the model is ``create(cfg.architecture)``; export uses ppdet's
``Trainer.export`` (made to work on Paddle 3 by `ppassign.compat.fix_export`).
"""
import copy
import glob
import json
import logging
import os
import re
import sys
import time

import numpy as np
import yaml

import paddle
from ppdet.engine.callbacks import Callback

from .. import compat, registry

logger = logging.getLogger("ppassign")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
# Detections with a score below this are neither drawn nor written by `infer` (PaddleDetection's default).
DRAW_THRESHOLD = 0.5
# COCOeval.stats holds 12 numbers (AP x6, AR x6).
NUM_COCO_STATS = 12


class PipelineError(Exception):
    """A user-facing error: the tools print its message as one line, without a stack trace."""


# ----------------------------------------------------------------------------------------------- config

def parse_overrides(items):
    """``["a.b=1", "c=[1, 2]"]`` -> ``[(["a", "b"], 1), (["c"], [1, 2])]`` (values parsed as YAML)."""
    parsed = []
    for item in items or ():
        if "=" not in item:
            raise PipelineError(f"-o override must look like key=value, got {item!r}")
        key, value = item.split("=", 1)
        try:
            parsed.append((key.strip().split("."), yaml.safe_load(value)))
        except yaml.YAMLError:
            raise PipelineError(f"-o override {item!r}: value is not valid YAML") from None
    return parsed


def _set_path(cfg, keys, value):
    """Set cfg[k0][k1]... = value; dataset objects (built by YAML tags) get attributes set instead."""
    target = cfg
    for i, key in enumerate(keys[:-1]):
        if isinstance(target, dict):
            has_default = getattr(target, "has_default", lambda k: False)(key)
            child = target[key] if key in target or has_default else None
            if isinstance(child, dict) and key not in target:  # a module's default dict: override a copy
                child = target[key] = copy.deepcopy(child)
        else:
            child = getattr(target, key, None)
        if child is None:
            child = {}
            if isinstance(target, dict):
                target[key] = child
            else:
                raise PipelineError(f"-o {'.'.join(keys)}: {'.'.join(keys[:i + 1])} does not exist")
        target = child
    if isinstance(target, dict):
        target[keys[-1]] = value
    else:
        setattr(target, keys[-1], value)


_MODULE_SCHEMAS = {}


def _reset_workspace():
    """Forget a previously loaded config; ppdet keeps one global config, where registered modules stay.

    A config's dataset objects replace ppdet's registered ``TrainDataset``/``EvalDataset``/... entries; those
    are restored from the copy kept here, and every module's YAML settings are cleared.
    """
    from ppdet.core.workspace import global_config
    for key, schema in _MODULE_SCHEMAS.items():
        if not hasattr(global_config.get(key), "pymodule"):
            global_config[key] = schema
    for key in list(global_config):
        value = global_config[key]
        if hasattr(value, "pymodule"):
            _MODULE_SCHEMAS[key] = value
            dict.clear(value)
        else:
            del global_config[key]


def load_config(path, overrides=(), override_ppdet_assigners=False):
    """Load a ppdet YAML config (with ``_BASE_``), apply ``-o`` overrides, return ppdet's global config.

    Raises PipelineError for a missing/unreadable/invalid file, an unknown ``!Tag`` or a missing architecture.
    """
    from ppdet.core.workspace import load_config as ppdet_load_config
    if not path:
        raise PipelineError("no config given: pass -c <config.yml>")
    if not os.path.isfile(path):
        raise PipelineError(f"config file not found: {path}")
    if os.path.splitext(path)[1] not in (".yml", ".yaml"):
        raise PipelineError(f"config must be a .yml/.yaml file, got {path}")
    if override_ppdet_assigners:
        registry.use_ppassign_for_ppdet_names()
    _reset_workspace()
    try:
        cfg = ppdet_load_config(path)
    except yaml.constructor.ConstructorError as e:
        raise PipelineError(f"config {path}: unknown module name ({_first_line(e.problem)})") from None
    except yaml.YAMLError as e:
        raise PipelineError(f"config {path} is not valid YAML: {_first_line(e)}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise PipelineError(f"config {path} cannot be read: {_first_line(e)}") from None
    except Exception as e:  # ppdet asserts/raises on bad _BASE_ entries, non-dict documents, ...
        raise PipelineError(f"config {path} is invalid: {type(e).__name__}: {_first_line(e)}") from None
    for keys, value in parse_overrides(overrides):
        _set_path(cfg, keys, value)
    _build_named_datasets(cfg, path)
    arch = cfg.get("architecture")
    if not arch:
        raise PipelineError(f"config {path} has no 'architecture' key (the model to build)")
    _check_module_names(cfg, path)
    compat.apply()
    return cfg


def _build_named_datasets(cfg, path):
    """Turn ``XxxDataset: {name: COCODataSet, ...}`` sections into dataset objects.

    ppdet accepts this form (through its CommonDataset wrappers) besides the ``!COCODataSet`` tag form; making
    objects of both lets the pipeline treat datasets alike (``-o`` overrides, ``get_anno`` for label names)
    and reports an unknown dataset name before anything is built.
    """
    from ppdet.core.config.schema import SchemaDict
    from ppdet.core.workspace import global_config
    for key in [k for k in cfg if k.endswith("Dataset")]:
        section = cfg[key]
        if not isinstance(section, dict) or "name" not in section:
            continue  # a dataset object built by a YAML tag (!COCODataSet), or no such section
        name = section["name"]
        if not isinstance(global_config.get(name), SchemaDict):
            raise PipelineError(f"config {path}: unknown module name {name!r} ({key})")
        kwargs = {k: v for k, v in dict(section).items() if k != "name"}
        try:
            cfg[key] = getattr(global_config[name].pymodule, name)(**kwargs)
        except TypeError as e:
            raise PipelineError(f"config {path}: {key} ({name}): {_first_line(e)}") from None


def _first_line(error):
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _check_module_names(cfg, path):
    """Raise PipelineError naming the first module the config asks for that ppdet does not know."""
    from ppdet.core.config.schema import SchemaDict
    from ppdet.core.workspace import global_config

    def known(name):
        return isinstance(global_config.get(name), SchemaDict)

    arch = cfg["architecture"]
    if not known(arch):
        raise PipelineError(f"config {path}: unknown module name {arch!r} (architecture)")
    seen = set()

    def module_keys(schema):
        """Keys that name sub-modules: injected ones, and those whose default names a registered module."""
        keys = set(getattr(schema, "inject", None) or ())
        for key, value in schema.schema.items():
            default = value.default if value.has_default() else None
            if isinstance(default, str) and known(default):
                keys.add(key)
        return keys

    def visit(name):
        if name in seen:
            return
        seen.add(name)
        schema = global_config[name]
        for key in module_keys(schema):
            try:
                value = schema[key]
            except KeyError:
                continue
            child = value.get("name") if isinstance(value, dict) else value
            if child is None or not isinstance(child, str):
                continue
            if not known(child):
                raise PipelineError(f"config {path}: unknown module name {child!r} ({name}.{key})")
            visit(child)

    visit(arch)


def build_model(cfg):
    """create(cfg.architecture), with config mistakes turned into PipelineError."""
    from ppdet.core.workspace import create
    try:
        return create(cfg.architecture)
    except (ValueError, KeyError, TypeError, AssertionError) as e:
        raise PipelineError(f"cannot build {cfg.architecture} from the config: {type(e).__name__}: "
                            f"{_first_line(e)}") from None


def _weights_file(weights):
    path = weights[:-len(".pdparams")] if weights.endswith(".pdparams") else weights
    if not os.path.isfile(path + ".pdparams"):
        raise PipelineError(f"weights file not found: {path}.pdparams")
    return path + ".pdparams"


def load_weights_strict(model, weights):
    """Load `weights` (.pdparams, suffix optional) into `model`; every parameter must be there with its shape.

    ppdet's loaders skip mismatched parameters with a log line; for evaluation, export and inference that is a
    silently wrong model, so here any missing, extra-shaped or unreadable parameter is a PipelineError.
    """
    path = _weights_file(weights)
    try:
        state = paddle.load(path)
    except Exception as e:
        raise PipelineError(f"weights {path} cannot be read: {type(e).__name__}: {_first_line(e)}") from None
    if not isinstance(state, dict):
        raise PipelineError(f"weights {path} do not hold a state dict")
    missing, wrong = [], []
    for key, value in model.state_dict().items():
        if key not in state:
            missing.append(key)
        elif list(np.shape(state[key])) != list(value.shape):
            wrong.append(f"{key}: {list(np.shape(state[key]))} in file vs {list(value.shape)} in model")
    if missing or wrong:
        detail = wrong[0] if wrong else f"{missing[0]} missing"
        raise PipelineError(f"weights {path} do not match the config: {len(missing)} parameters missing, "
                            f"{len(wrong)} with another shape (first: {detail})")
    model.set_state_dict({k: state[k] for k in model.state_dict()})


def _select_device(cfg):
    use_gpu = bool(cfg.get("use_gpu", False)) or paddle.device.is_compiled_with_cuda()
    cfg["use_gpu"] = use_gpu and paddle.device.is_compiled_with_cuda()
    paddle.set_device("gpu" if cfg["use_gpu"] else "cpu")


def _sync_test_categories(cfg):
    """Make TestDataset (label names for export/infer) read the evaluation annotations when it has none.

    A config without TestDataset gets an ImageFolder; one whose annotation file does not exist points at
    EvalDataset's (the synthetic dataset writes it on demand).
    """
    from ppdet.data.source.dataset import ImageFolder
    test, evalset = cfg.get("TestDataset"), cfg.get("EvalDataset")
    if test is None:
        test = cfg["TestDataset"] = ImageFolder()
    current = test.get_anno() if hasattr(test, "get_anno") else None
    if (current and os.path.isfile(current)) or evalset is None or not hasattr(evalset, "get_anno"):
        return
    anno = evalset.get_anno()
    if anno and os.path.isfile(anno):
        test.dataset_dir, test.anno_path = "", os.path.abspath(anno)


# ------------------------------------------------------------------------------------------------ train

class _MetricRecorder(Callback):
    """ppdet callback that keeps each evaluation's metric results (ppdet resets them right after logging)."""

    def __init__(self, trainer):
        super().__init__(trainer)
        self.history = []

    def on_epoch_end(self, status):
        if status.get("mode") == "eval":
            results = {}
            for metric in self.model._metrics:
                results.update({k: np.asarray(v).tolist() for k, v in metric.get_results().items()})
            self.history.append({"epoch": status.get("epoch_id"), "results": results})


def coco_summary(results):
    """{'bbox': [12 COCOeval stats]} -> {'mAP': AP@[.5:.95], 'AP50': AP@.5, 'AP75': AP@.75, 'stats': [12]}.

    ppdet reports no 'bbox' entry when the model detected nothing at all; that is scored as all zeros
    (what COCOeval gives for an empty result set), with 'no_detections': True.
    """
    stats = (results or {}).get("bbox")
    if stats is None or len(stats) < 3:
        return {"mAP": 0.0, "AP50": 0.0, "AP75": 0.0, "stats": [0.0] * NUM_COCO_STATS, "no_detections": True}
    stats = [float(v) for v in stats]
    return {"mAP": stats[0], "AP50": stats[1], "AP75": stats[2], "stats": stats}


def _format_summary(summary):
    text = f"COCO bbox mAP(0.50:0.95) = {summary['mAP']:.4f}  AP50 = {summary['AP50']:.4f}  " \
           f"AP75 = {summary['AP75']:.4f}"
    return text + ("  (the model detected nothing)" if summary.get("no_detections") else "")


def _set_output_eval(cfg):
    """Make ppdet's COCO metric write its bbox.json under the save dir instead of the current directory."""
    if not cfg.get("output_eval"):
        cfg["output_eval"] = os.path.join(cfg.get("save_dir", "output"), cfg.filename)
    os.makedirs(cfg["output_eval"], exist_ok=True)


def train(config, overrides=(), eval=False, resume=None, amp=False, use_vdl=False, vdl_log_dir=None,
          output_dir=None, override_ppdet_assigners=False, seed=None):
    """Train the config's model (ppdet Trainer); with `eval`, evaluate at each snapshot and at the end.

    Runs unchanged under ``python -m paddle.distributed.launch --nproc_per_node N``. `seed` (or the config's
    ``seed`` key) seeds Paddle, numpy and random (plus the rank, so that ranks draw different augmentations).
    Returns {'weights': final weights path, 'metrics': last COCO summary or None, 'seconds': wall time}.
    """
    from ppdet.engine import Trainer, init_parallel_env, set_random_seed
    cfg = load_config(config, overrides, override_ppdet_assigners)
    _select_device(cfg)
    if amp and not cfg["use_gpu"]:
        logger.warning("ppassign: --amp needs a GPU; training in float32 on the CPU")
    cfg["amp"] = bool(amp)
    if use_vdl:
        cfg["use_vdl"] = True
    if vdl_log_dir:
        cfg["vdl_log_dir"] = vdl_log_dir
    if output_dir:
        cfg["save_dir"] = output_dir
    init_parallel_env()
    seed = seed if seed is not None else cfg.get("seed")  # --seed wins over a config's `seed` key
    if seed is not None:
        set_random_seed(int(seed) + paddle.distributed.get_rank())
    if eval:
        _check_eval_dataset(cfg)
        _set_output_eval(cfg)
    trainer = _make_trainer(cfg, "train")
    if resume:
        trainer.resume_weights(_weights_file(resume)[:-len(".pdparams")])
    elif cfg.get("pretrain_weights"):
        trainer.load_weights(cfg.pretrain_weights)
    recorder = _MetricRecorder(trainer)
    trainer.register_callbacks([recorder])
    tic = time.time()
    trainer.train(eval)
    seconds = time.time() - tic
    weights = os.path.join(cfg.save_dir, cfg.filename, "model_final")
    summary = coco_summary(recorder.history[-1]["results"]) if recorder.history else None
    if paddle.distributed.get_rank() == 0:
        print(f"ppassign: training finished in {seconds:.0f} s; weights: {weights}.pdparams", flush=True)
        if summary:
            print(f"ppassign: final {_format_summary(summary)}", flush=True)
    return {"weights": weights, "metrics": summary, "seconds": seconds}


def _check_eval_dataset(cfg):
    if cfg.get("EvalDataset") is None:
        raise PipelineError("--eval needs an EvalDataset in the config")


def _make_trainer(cfg, mode):
    from ppdet.engine import Trainer
    try:
        return Trainer(cfg, mode=mode)
    except PipelineError:
        raise
    except (ValueError, KeyError, TypeError) as e:
        message = _first_line(e)
        missing = re.search(r"The module (\S+) is not registered", message)
        if missing:
            raise PipelineError(f"the config has no section {missing.group(1)!r} and no module of that name is "
                                f"registered (unknown module name or missing section)") from None
        raise PipelineError(f"cannot set up {mode} from the config: {type(e).__name__}: {message}") from None
    except AssertionError as e:
        raise PipelineError(f"cannot set up {mode} from the config: {_first_line(e)}") from None


# ------------------------------------------------------------------------------------------------- eval

def evaluate(config, overrides=(), weights=None):
    """COCO box metrics (pycocotools) of the config's model with `weights` (default: cfg.weights) on EvalDataset.

    Returns {'mAP', 'AP50', 'AP75', 'stats': all 12 COCOeval numbers}.
    """
    cfg = load_config(config, overrides)
    _select_device(cfg)
    _check_eval_dataset(cfg)
    weights = weights or cfg.get("weights")
    if not weights:
        raise PipelineError("no weights given: pass -o weights=<path without .pdparams>")
    _weights_file(weights)
    if str(cfg.get("metric", "")).upper() != "COCO":
        raise PipelineError(f"eval reports COCO box metrics; the config's metric is {cfg.get('metric')!r}")
    _set_output_eval(cfg)
    trainer = _make_trainer(cfg, "eval")
    load_weights_strict(trainer.model, weights)
    recorder = _MetricRecorder(trainer)
    trainer.register_callbacks([recorder])
    trainer.evaluate()
    summary = coco_summary(recorder.history[-1]["results"] if recorder.history else {})
    print(f"ppassign: {_format_summary(summary)}", flush=True)
    return summary


# ----------------------------------------------------------------------------------------------- export

def export(config, overrides=(), weights=None, output_dir="output_inference"):
    """Export a Paddle Inference model to ``<output_dir>/<config name>/`` and return that folder.

    The folder holds ``model.json`` (PIR; ``model.pdmodel`` on legacy IR), ``model.pdiparams`` and
    ``infer_cfg.yml`` as PaddleDetection's ``deploy/python/infer.py`` expects.
    """
    from ppdet.engine.export_utils import TRT_MIN_SUBGRAPH
    cfg = load_config(config, overrides)
    cfg["use_gpu"] = False
    paddle.set_device("cpu")
    arch = cfg.architecture
    if not any(name in arch for name in TRT_MIN_SUBGRAPH) and arch not in ("PPYOLOE", "YOLOX", "YOLOF"):
        raise PipelineError(f"architecture {arch!r} cannot be exported by ppdet 2.6 (no deploy settings for it)")
    weights = weights or cfg.get("weights")
    if not weights:
        raise PipelineError("no weights given: pass -o weights=<path without .pdparams>")
    _weights_file(weights)
    _sync_test_categories(cfg)
    trainer = _make_trainer(cfg, "test")
    load_weights_strict(trainer.model, weights)
    trainer.export(output_dir)
    save_dir = os.path.join(output_dir, cfg.filename)
    if not any(os.path.isfile(os.path.join(save_dir, f)) for f in compat.INFERENCE_PROGRAM_FILES):
        raise PipelineError(f"export wrote no program file to {save_dir}")
    print(f"ppassign: exported inference model to {save_dir}", flush=True)
    return save_dir


# ------------------------------------------------------------------------------------------------ infer

def list_images(infer_img=None, infer_dir=None):
    """Image paths from one file or a folder (sorted); PipelineError when there are none."""
    if infer_img:
        if not os.path.isfile(infer_img):
            raise PipelineError(f"image not found: {infer_img}")
        return [infer_img]
    if not infer_dir:
        raise PipelineError("pass --infer_img <image> or --infer_dir <folder>")
    if not os.path.isdir(infer_dir):
        raise PipelineError(f"image folder not found: {infer_dir}")
    images = sorted(p for p in glob.glob(os.path.join(infer_dir, "*"))
                    if p.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(p))
    if not images:
        raise PipelineError(f"no images ({'/'.join(IMAGE_EXTENSIONS)}) in folder {infer_dir}")
    return images


def infer(config=None, overrides=(), weights=None, model_dir=None, infer_img=None, infer_dir=None,
          output_dir="output", draw_threshold=DRAW_THRESHOLD, cpu_threads=None):
    """Detect objects in images with trained weights (`config`) or an exported model (`model_dir`).

    Writes ``<output_dir>/<image name>`` with the boxes drawn and ``<output_dir>/detections.json`` (a list of
    {image, category_id, category, score, bbox [x1, y1, x2, y2]} in original-image pixels) and returns that list.
    """
    images = list_images(infer_img, infer_dir)
    if model_dir:
        predictor = ExportedPredictor(model_dir, cpu_threads=cpu_threads)
        labels = predictor.label_list
    elif config:
        predictor = DygraphPredictor(config, overrides, weights)
        labels = predictor.label_list
    else:
        raise PipelineError("pass -c <config> (with -o weights=...) or --model_dir <exported model>")
    os.makedirs(output_dir, exist_ok=True)
    detections = []
    for path in images:
        image = _read_image(path)
        boxes = predictor.predict(image)
        kept = boxes[boxes[:, 1] >= draw_threshold]
        detections.extend(_to_records(path, kept, labels))
        _draw(image, kept, labels, os.path.join(output_dir, os.path.basename(path)))
    out_json = os.path.join(output_dir, "detections.json")
    with open(out_json, "w", encoding="utf-8") as f:
        json.dump(detections, f, indent=1)
    print(f"ppassign: {len(detections)} detections in {len(images)} images -> {output_dir}", flush=True)
    return detections


def _read_image(path):
    import cv2
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise PipelineError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _to_records(path, boxes, labels):
    return [{"image": os.path.basename(path), "category_id": int(row[0]),
             "category": labels[int(row[0])] if 0 <= int(row[0]) < len(labels) else str(int(row[0])),
             "score": round(float(row[1]), 5), "bbox": [round(float(v), 2) for v in row[2:6]]} for row in boxes]


def _draw(image_rgb, boxes, labels, out_path):
    import cv2
    canvas = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)
    for cls, score, x1, y1, x2, y2 in boxes.tolist():
        colour = tuple(int(c) for c in np.random.default_rng(int(cls)).integers(64, 256, 3))
        cv2.rectangle(canvas, (int(x1), int(y1)), (int(x2), int(y2)), colour, 1)
        name = labels[int(cls)] if 0 <= int(cls) < len(labels) else str(int(cls))
        cv2.putText(canvas, f"{name} {score:.2f}", (int(x1), max(int(y1) - 2, 8)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.35, colour, 1)
    if not cv2.imwrite(out_path, canvas):
        raise PipelineError(f"cannot write {out_path}")


def preprocess(image_rgb, transforms):
    """Apply reader transforms (ppdet TestReader or infer_cfg.yml ``Preprocess``; Decode skipped) to one image.

    `transforms` is a list of {OpName: kwargs}; ``PadStride`` (the deploy name of ppdet's ``PadBatch``) pads
    the CHW image with zeros at the bottom/right to a multiple of its stride.
    Returns the model inputs {'image': [1, 3, H, W], 'im_shape': [1, 2], 'scale_factor': [1, 2]} as numpy.
    """
    from ppdet.data import transform as ppdet_transform
    sample = {"image": image_rgb.copy(), "im_shape": np.array(image_rgb.shape[:2], np.float32),
              "scale_factor": np.ones(2, np.float32), "h": image_rgb.shape[0], "w": image_rgb.shape[1]}
    for item in transforms:
        (name, kwargs), = item.items()
        if name == "Decode":
            continue
        if name == "PadStride":
            sample["image"] = _pad_to_stride(sample["image"], int(kwargs.get("stride", 0)))
            continue
        if not hasattr(ppdet_transform, name):
            raise PipelineError(f"unknown preprocessing op {name!r}")
        sample = getattr(ppdet_transform, name)(**(kwargs or {}))(sample)
    return {"image": sample["image"][None].astype(np.float32),
            "im_shape": np.asarray(sample["im_shape"], np.float32)[None],
            "scale_factor": np.asarray(sample["scale_factor"], np.float32)[None]}


def _pad_to_stride(image_chw, stride):
    """[C, H, W] -> [C, ceil(H / stride) * stride, ceil(W / stride) * stride], zero padded (stride <= 0: as is)."""
    if stride <= 0:
        return image_chw
    c, h, w = image_chw.shape
    out = np.zeros((c, -(-h // stride) * stride, -(-w // stride) * stride), image_chw.dtype)
    out[:, :h, :w] = image_chw
    return out


def _test_transforms(reader_cfg):
    """A TestReader's per-image transforms: sample_transforms plus PadBatch as PadStride (deploy naming)."""
    transforms = list(reader_cfg["sample_transforms"])
    for item in reader_cfg.get("batch_transforms") or ():
        (name, kwargs), = item.items()
        if name == "PadBatch" and (kwargs or {}).get("pad_to_stride", 0) > 0:
            transforms.append({"PadStride": {"stride": kwargs["pad_to_stride"]}})
    return transforms


class DygraphPredictor:
    """The config's model with trained weights, predicting one image at a time: [N, 6] numpy rows."""

    def __init__(self, config, overrides=(), weights=None):
        cfg = load_config(config, overrides)
        _select_device(cfg)
        weights = weights or cfg.get("weights")
        if not weights:
            raise PipelineError("no weights given: pass -o weights=<path without .pdparams>")
        _weights_file(weights)
        _sync_test_categories(cfg)
        self.model = build_model(cfg)
        self.model.load_meanstd(cfg["TestReader"]["sample_transforms"])
        load_weights_strict(self.model, weights)
        self.model.eval()
        self.transforms = _test_transforms(cfg["TestReader"])
        self.label_list = _label_list(cfg)

    def predict(self, image_rgb):
        inputs = {k: paddle.to_tensor(v) for k, v in preprocess(image_rgb, self.transforms).items()}
        with paddle.no_grad():
            out = self.model(inputs)
        return _valid_rows(out["bbox"].numpy(), int(out["bbox_num"].numpy().sum()))


class ExportedPredictor:
    """A Paddle Inference predictor over an exported model folder: [N, 6] numpy rows per image."""

    def __init__(self, model_dir, cpu_threads=None):
        cfg_path = os.path.join(model_dir, "infer_cfg.yml")
        if not os.path.isfile(cfg_path):
            raise PipelineError(f"model_dir {model_dir!r} has no infer_cfg.yml (export it with tools/export_model.py)")
        with open(cfg_path, encoding="utf-8") as f:
            self.infer_cfg = yaml.safe_load(f)
        try:
            config = compat.inference_config(model_dir, cpu_threads)
        except FileNotFoundError as e:
            raise PipelineError(str(e)) from None
        self.predictor = paddle.inference.create_predictor(config)
        self.transforms = [{item.pop("type"): item} for item in
                           (dict(step) for step in self.infer_cfg.get("Preprocess", []))]
        self.label_list = list(self.infer_cfg.get("label_list", []))

    def predict(self, image_rgb):
        inputs = preprocess(image_rgb, self.transforms)
        for name in self.predictor.get_input_names():
            handle = self.predictor.get_input_handle(name)
            handle.reshape(inputs[name].shape)
            handle.copy_from_cpu(inputs[name])
        self.predictor.run()
        names = self.predictor.get_output_names()
        boxes = self.predictor.get_output_handle(names[0]).copy_to_cpu()
        count = int(self.predictor.get_output_handle(names[1]).copy_to_cpu().sum()) if len(names) > 1 \
            else len(boxes)
        return _valid_rows(boxes, count)


def _valid_rows(boxes, count):
    """The first `count` rows of [K, 6] boxes, dropping ppdet's [-1, ...] filler rows; float32 [N, 6]."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 6)[:count]
    return boxes[boxes[:, 0] >= 0]


def _label_list(cfg):
    from ppdet.data.source.category import get_categories
    test = cfg.get("TestDataset")
    anno = test.get_anno() if test is not None and hasattr(test, "get_anno") else None
    _, catid2name = get_categories(cfg.metric, anno)
    return [str(name) for name in catid2name.values()]


# ------------------------------------------------------------------------------------------------- CLI

def main(function, **kwargs):
    """Run a pipeline function for a tool: PipelineError -> one line on stderr, exit status 2."""
    try:
        function(**kwargs)
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    return 0

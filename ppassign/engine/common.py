"""What every engine job shares: the user-facing error, the tool entry point, weights, device, Trainer set-up
and COCO metric summaries."""
import contextlib
import logging
import os
import re
import sys

import numpy as np

import paddle
from ppdet.engine.callbacks import Callback

from ..compat import DataLoadingError, checkpoint_dir, quiet

logger = logging.getLogger("ppassign")

# COCOeval.stats holds 12 numbers (AP x6, AR x6).
NUM_COCO_STATS = 12


class PipelineError(Exception):
    """A user-facing error: the tools print its message as one line, without a stack trace."""


_HELD_WARNINGS = []  # a list per open `checking` block


def warn(message):
    """A one-line warning on stderr: the run goes on, but probably not as meant (held inside `checking`)."""
    if _HELD_WARNINGS:
        _HELD_WARNINGS[-1].append(message)
    else:
        print(f"warning: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def checking():
    """Hold the warnings of the checks in the block: printed when it ends, dropped when it raises (then the
    error is the only line the tool prints)."""
    _HELD_WARNINGS.append([])
    try:
        yield
    finally:
        held = _HELD_WARNINGS.pop()
    for message in held:
        warn(message)


def first_line(error):
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def weights_file(weights):
    path = weights[:-len(".pdparams")] if weights.endswith(".pdparams") else weights
    if not os.path.isfile(path + ".pdparams"):
        raise PipelineError(f"weights file not found: {path}.pdparams")
    return path + ".pdparams"


def resolve_weights(cfg, weights=None):
    """The weights eval / export / infer load: `weights`, else the config's ``weights`` key; PipelineError when
    neither is given or its .pdparams file does not exist."""
    weights = weights or cfg.get("weights")
    if not weights:
        raise PipelineError("no weights given: pass -o weights=<path without .pdparams>")
    weights_file(weights)
    return weights


def load_weights_strict(model, weights):
    """Load `weights` (.pdparams, suffix optional) into `model`; every parameter must be there with its shape.

    ppdet's loaders skip mismatched parameters with a log line; for evaluation, export and inference that is a
    silently wrong model, so here any missing, extra-shaped or unreadable parameter is a PipelineError.
    """
    path = weights_file(weights)
    try:
        state = paddle.load(path)
    except Exception as e:
        raise PipelineError(f"weights {path} cannot be read: {type(e).__name__}: {first_line(e)}") from None
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


def select_device(cfg):
    use_gpu = bool(cfg.get("use_gpu", False)) or paddle.device.is_compiled_with_cuda()
    cfg["use_gpu"] = use_gpu and paddle.device.is_compiled_with_cuda()
    paddle.set_device("gpu" if cfg["use_gpu"] else "cpu")


class MetricRecorder(Callback):
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


def format_summary(summary):
    text = f"COCO bbox mAP(0.50:0.95) = {summary['mAP']:.4f}  AP50 = {summary['AP50']:.4f}  " \
           f"AP75 = {summary['AP75']:.4f}"
    return text + ("  (the model detected nothing)" if summary.get("no_detections") else "")


class _ResultPathFilter(logging.Filter):
    """Rewrite ppdet's "The bbox result is saved to bbox.json." to name the file it actually wrote."""

    def __init__(self):
        super().__init__()
        self.output_eval = None

    def filter(self, record):
        if self.output_eval and isinstance(record.msg, str) and record.msg.endswith(" is saved to bbox.json."):
            record.msg = record.msg.replace("bbox.json", os.path.join(self.output_eval, "bbox.json"))
        return True


_RESULT_PATH_FILTER = _ResultPathFilter()


@contextlib.contextmanager
def output_eval_folder(cfg):
    """Make ppdet's COCO metric write its bbox.json under the save dir instead of the current directory, and say
    where in its log line. The folder is made on entry (ppdet's COCOMetric, built with the Trainer inside the
    block, needs its parent); folders made here are removed again when the block raises, so that a config
    mistake leaves nothing behind."""
    if not cfg.get("output_eval"):
        cfg["output_eval"] = checkpoint_dir(cfg)
    made, path = [], os.path.abspath(cfg["output_eval"])
    while not os.path.isdir(path):
        made.append(path)
        path = os.path.dirname(path)
    os.makedirs(cfg["output_eval"], exist_ok=True)
    _RESULT_PATH_FILTER.output_eval = cfg["output_eval"]
    metrics_logger = logging.getLogger("ppdet.metrics.metrics")
    if _RESULT_PATH_FILTER not in metrics_logger.filters:
        metrics_logger.addFilter(_RESULT_PATH_FILTER)
    try:
        yield
    except BaseException:
        for folder in made:  # deepest first
            with contextlib.suppress(OSError):
                os.rmdir(folder)
        raise


@contextlib.contextmanager
def data_errors_as_pipeline_errors(reader):
    """Turn a `compat.DataLoadingError` raised while `reader` (e.g. "TrainReader") loads a batch into a
    PipelineError: one line naming the reader's error."""
    try:
        yield
    except DataLoadingError as e:
        hint = ""
        if "same shape" in str(e) or "same size" in str(e):
            hint = (" (images of different sizes: give the reader's sample_transforms a Resize, or its "
                    "batch_transforms a BatchRandomResize or PadBatch)")
        raise PipelineError(f"data loading failed in {reader}: {e}{hint}") from None


def check_eval_dataset(cfg):
    if cfg.get("EvalDataset") is None:
        raise PipelineError("--eval needs an EvalDataset in the config")


def make_trainer(cfg, mode):
    from ppdet.engine import Trainer
    try:
        return Trainer(cfg, mode=mode)
    except PipelineError:
        raise
    except (ValueError, KeyError, TypeError) as e:
        message = first_line(e)
        missing = re.search(r"The module (\S+) is not registered", message)
        if missing:
            raise PipelineError(f"the config has no section {missing.group(1)!r} and no module of that name is "
                                f"registered (unknown module name or missing section)") from None
        raise PipelineError(f"cannot set up {mode} from the config: {type(e).__name__}: {message}") from None
    except AssertionError as e:
        raise PipelineError(f"cannot set up {mode} from the config: {first_line(e)}") from None


def main(function, verbose=False, **kwargs):
    """Run a pipeline function for a tool: PipelineError -> one line on stderr, exit status 2.

    Known noise is dropped (`compat.quiet.quiet_run`) unless `verbose`.
    """
    if verbose:
        quiet.set_verbose(True)
    try:
        with quiet.quiet_run():
            function(**kwargs)
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    return 0

"""COCO box metrics of trained weights on a config's EvalDataset."""
from . import checks
from .common import (MetricRecorder, PipelineError, check_eval_dataset, checking, coco_summary,
                     data_errors_as_pipeline_errors, format_summary, load_weights_strict, make_trainer,
                     output_eval_folder, resolve_weights, select_device)
from .config import load_config


def evaluate(config, overrides=(), weights=None):
    """COCO box metrics (pycocotools) of the config's model with `weights` (default: cfg.weights) on EvalDataset.

    Returns {'mAP', 'AP50', 'AP75', 'stats': all 12 COCOeval numbers}.
    """
    with checking():
        cfg = load_config(config, overrides)
        check_eval_dataset(cfg)
        checks.check_dataset_files(cfg, "EvalDataset")
        checks.check_num_classes(cfg, ["EvalDataset"])
    select_device(cfg)
    weights = resolve_weights(cfg, weights)
    if str(cfg.get("metric", "")).upper() != "COCO":
        raise PipelineError(f"eval reports COCO box metrics; the config's metric is {cfg.get('metric')!r}")
    with output_eval_folder(cfg):
        trainer = make_trainer(cfg, "eval")
        load_weights_strict(trainer.model, weights)
    recorder = MetricRecorder(trainer)
    trainer.register_callbacks([recorder])
    with data_errors_as_pipeline_errors("EvalReader"):
        trainer.evaluate()
    summary = coco_summary(recorder.history[-1]["results"] if recorder.history else {})
    print(f"ppassign: {format_summary(summary)}", flush=True)
    return summary

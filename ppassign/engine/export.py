"""Export trained weights to a Paddle Inference model in PaddleDetection's deploy format."""
import os

import paddle

from .. import compat
from . import checks
from .common import PipelineError, checking, load_weights_strict, make_trainer, resolve_weights
from .config import CATEGORY_IDS_KEY, categories, load_config, sync_test_categories


def export(config, overrides=(), weights=None, output_dir="output_inference"):
    """Export a Paddle Inference model to ``<output_dir>/<config name>/`` and return that folder.

    The folder holds ``model.json`` (PIR; ``model.pdmodel`` on legacy IR), ``model.pdiparams`` and
    ``infer_cfg.yml`` as PaddleDetection's ``deploy/python/infer.py`` expects; ``infer_cfg.yml`` also gets
    ``category_ids`` (the dataset's category id of each class index, which ppdet's deploy code ignores).
    """
    from ppdet.engine.export_utils import TRT_MIN_SUBGRAPH
    with checking():
        cfg = load_config(config, overrides)
        arch = cfg.architecture
        if not any(name in arch for name in TRT_MIN_SUBGRAPH) and arch not in ("PPYOLOE", "YOLOX", "YOLOF"):
            raise PipelineError(f"architecture {arch!r} cannot be exported by ppdet 2.6 (no deploy settings "
                                f"for it)")
        weights = resolve_weights(cfg, weights)
        sync_test_categories(cfg)
        checks.check_num_classes(cfg, ["TestDataset"])
    cfg["use_gpu"] = False
    paddle.set_device("cpu")
    trainer = make_trainer(cfg, "test")
    load_weights_strict(trainer.model, weights)
    with compat.quiet.without_native_stderr_lines((compat.quiet.PIR_OUT_TENSOR,)):
        trainer.export(output_dir)
    save_dir = os.path.join(output_dir, cfg.filename)
    if not any(os.path.isfile(os.path.join(save_dir, f)) for f in compat.INFERENCE_PROGRAM_FILES):
        raise PipelineError(f"export wrote no program file to {save_dir}")
    ids, _ = categories(cfg)
    with open(os.path.join(save_dir, "infer_cfg.yml"), "a", encoding="utf-8") as f:
        f.write(f"{CATEGORY_IDS_KEY}: {ids}\n")
    print(f"ppassign: exported inference model to {save_dir}", flush=True)
    return save_dir

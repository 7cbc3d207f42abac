"""Train any ppdet config (ppdet's Trainer), optionally evaluating at each snapshot."""
import contextlib
import importlib.util
import os
import time

import paddle

from .. import compat
from . import checks
from .common import (PipelineError, check_eval_dataset, checking, data_errors_as_pipeline_errors, format_summary,
                     logger, make_trainer, output_eval_folder, select_device, weights_file)
from .config import load_config
from .record import RECORD_FILE, TrainingRecord, diverged_as_pipeline_errors


def train(config, overrides=(), eval=False, resume=None, amp=False, use_vdl=False, vdl_log_dir=None,
          output_dir=None, override_ppdet_assigners=False, seed=None, epochs=None):
    """Train the config's model (ppdet Trainer); with `eval`, evaluate at each snapshot and at the end.

    Runs unchanged under ``python -m paddle.distributed.launch --nproc_per_node N``. `seed` (or the config's
    ``seed`` key) seeds Paddle, numpy and random (plus the rank, so that ranks draw different augmentations).
    `epochs` sets ``epoch`` and scales the schedule with it (`checks.scale_schedule`); ``-o epoch=N`` keeps the
    schedule and is warned about when that leaves it made for another length. The datasets the run reads and
    ``num_classes`` are checked before anything is built (`checks`); a run that diverges (NaN or inf loss or
    predictions) stops with a PipelineError (`record`).
    Writes ``metrics.json`` (`ppassign.engine.record`) next to the weights as training goes.
    Returns {'weights': final weights path, 'metrics': last COCO summary or None, 'seconds': wall time,
    'record': path of metrics.json}.
    """
    from ppdet.engine import init_parallel_env, set_random_seed
    with checking():
        cfg = load_config(config, overrides, override_ppdet_assigners, epochs=epochs, check_schedule=True)
        if eval:
            check_eval_dataset(cfg)
        datasets = ["TrainDataset"] + (["EvalDataset"] if eval else [])
        for key in datasets:
            checks.check_dataset_files(cfg, key)
        checks.check_num_classes(cfg, datasets)
        if resume:
            weights_file(resume)
    select_device(cfg)
    if amp and not cfg["use_gpu"]:
        logger.warning("ppassign: --amp needs a GPU; training in float32 on the CPU")
    cfg["amp"] = bool(amp)
    if use_vdl:
        if importlib.util.find_spec("visualdl") is None:
            raise PipelineError("--use_vdl needs VisualDL: pip install visualdl")
        cfg["use_vdl"] = True
    if vdl_log_dir:
        cfg["vdl_log_dir"] = vdl_log_dir
    if output_dir:
        cfg["save_dir"] = output_dir
    if paddle.distributed.ParallelEnv().world_size > 1:
        init_parallel_env()  # on one process it would only print Paddle's "Modified FLAGS" box
    seed = seed if seed is not None else cfg.get("seed")  # --seed wins over a config's `seed` key
    if seed is not None:
        set_random_seed(int(seed) + paddle.distributed.get_rank())
    with output_eval_folder(cfg) if eval else contextlib.nullcontext():
        trainer = make_trainer(cfg, "train")
    compat.save_checkpoints_under_config_name(trainer)
    if resume:
        trainer.resume_weights(weights_file(resume)[:-len(".pdparams")])
    elif cfg.get("pretrain_weights"):
        trainer.load_weights(cfg.pretrain_weights)
    record_path = os.path.join(compat.checkpoint_dir(cfg), RECORD_FILE)
    record = TrainingRecord(trainer, record_path, config, seed=seed, resume=bool(resume))
    trainer.register_callbacks([record])
    tic = time.time()
    with data_errors_as_pipeline_errors("TrainReader" + (" / EvalReader" if eval else "")), \
            diverged_as_pipeline_errors(record):
        trainer.train(eval)
    seconds = time.time() - tic
    weights = os.path.join(compat.checkpoint_dir(cfg), "model_final")
    summary = record.last_summary
    if paddle.distributed.get_rank() == 0:
        print(f"ppassign: training finished in {seconds:.0f} s; weights: {weights}.pdparams", flush=True)
        if summary:
            print(f"ppassign: final {format_summary(summary)}", flush=True)
    return {"weights": weights, "metrics": summary, "seconds": seconds, "record": record_path}

"""ppdet's Trainer: where its Checkpointer writes, made the same on every ppdet.

paddledet 2.6.0 and v2.7.0 save checkpoints to ``<save_dir>/<config name>/`` (``model_final.pdparams``, ...);
PaddleDetection develop saves them to ``<save_dir>/`` itself. ppassign's tools and docs promise the first, so
where the installed Checkpointer points at the bare save dir it is pointed at the config's folder (decided from
the Checkpointer object that ppdet built, not from a version).
"""
import os


def checkpoint_dir(cfg):
    """``<save_dir>/<config name>``: where ppassign's tools expect ppdet's checkpoints."""
    return os.path.join(cfg.get("save_dir", "output"), cfg.filename)


def save_checkpoints_under_config_name(trainer):
    """Point the Checkpointer callbacks of a ppdet `trainer` that write to the bare save dir at `checkpoint_dir`.

    Returns the number of callbacks changed (0 where ppdet already saves there).
    """
    save_dir = os.path.normpath(trainer.cfg.get("save_dir", "output"))
    changed = 0
    for callback in getattr(trainer, "_callbacks", None) or ():
        own_dir = getattr(callback, "save_dir", None)
        if "Checkpointer" in type(callback).__name__ and own_dir and os.path.normpath(own_dir) == save_dir:
            callback.save_dir = checkpoint_dir(trainer.cfg)
            changed += 1
    return changed

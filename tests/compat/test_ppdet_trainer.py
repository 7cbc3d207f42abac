"""compat.ppdet_trainer: checkpoints go to <save_dir>/<config name>/ whatever the installed ppdet does."""
import os

from ppassign.compat import ppdet_trainer


class _Cfg(dict):
    filename = "my_data"


class Checkpointer:
    def __init__(self, save_dir):
        self.save_dir = save_dir


class LogPrinter:
    save_dir = "out"


class _Trainer:
    def __init__(self, checkpointer_dir):
        self.cfg = _Cfg(save_dir="out")
        self._callbacks = [LogPrinter(), Checkpointer(checkpointer_dir)]


def test_a_checkpointer_writing_to_the_bare_save_dir_is_moved_to_the_config_folder():
    trainer = _Trainer("out")                                   # PaddleDetection develop
    assert ppdet_trainer.save_checkpoints_under_config_name(trainer) == 1
    assert trainer._callbacks[1].save_dir == os.path.join("out", "my_data")
    assert trainer._callbacks[0].save_dir == "out"              # only checkpointers


def test_a_checkpointer_already_writing_to_the_config_folder_is_left_alone():
    trainer = _Trainer(os.path.join("out", "my_data"))          # paddledet 2.6.0, v2.7.0
    assert ppdet_trainer.save_checkpoints_under_config_name(trainer) == 0
    assert trainer._callbacks[1].save_dir == os.path.join("out", "my_data")

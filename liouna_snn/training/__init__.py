"""Who learns when: layer-decoupled schedules, checkpoints, resumption."""
from .checkpoint import load_checkpoint, save_atomic, write_atomic
from .schedules import SCHEDULES, TrainConfig, recalibrate_norms, train_unsupervised

__all__ = ["SCHEDULES", "TrainConfig", "load_checkpoint", "recalibrate_norms", "save_atomic", "train_unsupervised",
           "write_atomic"]

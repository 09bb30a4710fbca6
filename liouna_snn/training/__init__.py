"""Who learns when: layer-decoupled schedules, checkpoints, resumption."""
from .checkpoint import load_checkpoint, save_atomic, write_atomic
from .progress import TrainingBar
from .schedules import (CALIBRATION_IMAGES, SCHEDULES, TrainConfig, calibrate_current_scales, check_budget,
                        donor_name, epoch_generator, layer_reuse, phase_deadlines, recalibrate_norms, reusable_layers,
                        schedule_phases, train_unsupervised)

__all__ = ["CALIBRATION_IMAGES", "SCHEDULES", "TrainConfig", "TrainingBar", "calibrate_current_scales", "check_budget",
           "donor_name", "epoch_generator", "layer_reuse",
           "load_checkpoint", "phase_deadlines", "recalibrate_norms", "reusable_layers", "save_atomic",
           "schedule_phases", "train_unsupervised", "write_atomic"]

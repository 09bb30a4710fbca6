"""Evaluation of learned features: per-layer linear probes and k-NN."""
from .augmented_probe import PROBE_AUGMENTS, augmented_probe, probe_augment
from .features import extract_features, features_by_depth
from .knn import knn_top1
from .layers import PROBE_DEFAULTS, probe_depths, probe_layers, recorded_probe_options
from .probe import linear_probe, standardize_
from .readout import read_out

__all__ = ["PROBE_AUGMENTS", "PROBE_DEFAULTS", "augmented_probe", "extract_features", "features_by_depth", "knn_top1",
           "linear_probe", "probe_augment", "probe_depths", "probe_layers", "read_out", "recorded_probe_options",
           "standardize_"]

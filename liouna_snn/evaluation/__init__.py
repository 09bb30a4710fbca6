"""Evaluation of learned features: per-layer linear probes and k-NN."""
from .features import extract_features, features_by_depth
from .knn import knn_top1
from .layers import PROBE_DEFAULTS, probe_depths, probe_layers
from .probe import linear_probe, standardize_
from .readout import read_out

__all__ = ["PROBE_DEFAULTS", "extract_features", "features_by_depth", "knn_top1", "linear_probe", "probe_depths",
           "probe_layers", "read_out", "standardize_"]

"""Evaluation of learned features: per-layer linear probes and k-NN."""
from .features import extract_features
from .knn import knn_top1
from .probe import linear_probe, standardize_

__all__ = ["extract_features", "knn_top1", "linear_probe", "standardize_"]

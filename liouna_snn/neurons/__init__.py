"""Neurons: rate nonlinearities (and, later, spiking dynamics) that turn a layer's drive into activity."""
from .rate import ACTIVATIONS, make_activation

__all__ = ["ACTIVATIONS", "make_activation"]

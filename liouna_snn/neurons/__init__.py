"""Neurons: rate nonlinearities and spiking dynamics that turn a layer's drive into activity.

Rate neurons (:mod:`.rate`) are stateless functions ``y = act(u)``. Spiking neurons (:mod:`.base`) step
through time with explicit state, ``spikes, state = neuron.step(current, state)``; :func:`run` and
:func:`rates` loop them. :mod:`.lif` holds the library's own LIF, :mod:`.backends` wraps snnTorch and
Norse behind the same interface (with the parameter mapping), :mod:`.encoders` turns inputs into spikes.
"""
from .backends import (
    NEURONS, NorseLIF, NorseLIFBox, SnnTorchLeaky, beta_to_tau_mem_inv, make_neuron, neuron_parameters,
    tau_mem_inv_to_beta,
)
from .base import Neuron, compiled_counts, compiled_step, rates, run
from .encoders import ConstantInput, bernoulli_rate, constant_current, latency, poisson_rate
from .lif import IntegrateAndFire, LIFParameters, NativeLIF, lif_step, lif_step_
from .rate import ACTIVATIONS, make_activation

__all__ = [
    "ACTIVATIONS", "make_activation",
    "Neuron", "compiled_counts", "compiled_step", "run", "rates",
    "LIFParameters", "lif_step", "lif_step_", "NativeLIF", "IntegrateAndFire",
    "SnnTorchLeaky", "NorseLIF", "NorseLIFBox", "NEURONS", "make_neuron", "neuron_parameters",
    "beta_to_tau_mem_inv", "tau_mem_inv_to_beta",
    "bernoulli_rate", "poisson_rate", "constant_current", "ConstantInput", "latency",
]

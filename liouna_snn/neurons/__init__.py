"""Neurons: rate nonlinearities and spiking dynamics that turn a layer's drive into activity.

Every neuron implements one interface (:mod:`.base`): it steps through time with explicit state,
``out, state = neuron.step(current, state)``; :func:`run` and :func:`rates` loop it. Rate neurons
(:mod:`.rate`) are stateless nonlinearities ``y = act(u)``, the same at every step (:class:`RateNeuron`);
spiking neurons put out spikes and remember their membranes. :mod:`.lif` holds the library's own LIF, :mod:`.backends` wraps snnTorch and
Norse behind the same interface (with the parameter mapping), :mod:`.encoders` turns inputs into spikes.
"""
from .backends import (
    NEURONS, SPIKING_NEURONS, NorseLIF, NorseLIFBox, SnnTorchLeaky, SubtractAfterLeak, beta_to_tau_mem_inv,
    make_neuron, neuron_parameters, tau_mem_inv_to_beta,
)
from .base import Neuron, compiled_counts, compiled_step, rates, run
from .encoders import ConstantInput, bernoulli_rate, constant_current, latency, poisson_rate
from .lif import IntegrateAndFire, LIFParameters, NativeLIF, lif_step, lif_step_
from .rate import ACTIVATIONS, RateNeuron, make_activation

__all__ = [
    "ACTIVATIONS", "make_activation", "RateNeuron",
    "Neuron", "compiled_counts", "compiled_step", "run", "rates",
    "LIFParameters", "lif_step", "lif_step_", "NativeLIF", "IntegrateAndFire",
    "SnnTorchLeaky", "NorseLIF", "NorseLIFBox", "SubtractAfterLeak",
    "NEURONS", "SPIKING_NEURONS", "make_neuron", "neuron_parameters",
    "beta_to_tau_mem_inv", "tau_mem_inv_to_beta",
    "bernoulli_rate", "poisson_rate", "constant_current", "ConstantInput", "latency",
]

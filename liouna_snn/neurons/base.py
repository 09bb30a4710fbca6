"""The interface every neuron implements, and the two loops the rest of the library needs.

A neuron is, Norse-style, a step function with explicit state::

    state = neuron.init_state(shape, device, dtype)
    for t in range(T):
        spikes, state = neuron.step(current[t], state)

``current`` is the synaptic drive of one time step (``W * x_t``, any shape, e.g. ``(B, K, H, W)``);
``spikes`` has the same shape and dtype, with values in {0, 1} (for a spiking neuron; the rate neurons of
:mod:`.rate` put out their rate ``act(current)`` at every step, and have ``spiking = False``). The state is whatever the model
remembers between steps (a tensor, or a NamedTuple of tensors); it is never hidden in the module.

:func:`run` threads a neuron through a ``(T, B, ...)`` current and returns the ``(T, B, ...)``
spike train; :func:`rates` drives it with one constant current for ``T`` steps and returns the
spike count divided by ``T``, without materialising the spike train. Neither builds an autograd
graph: this library never backpropagates through neurons.
"""
from __future__ import annotations

import abc
import weakref
from typing import Any, Callable

import torch
from torch import nn

State = Any
"""A neuron's memory between steps: a tensor or a NamedTuple of tensors, shaped like the current."""


class Neuron(nn.Module, abc.ABC):
    """A neuron: ``init_state`` and a one-step update ``step(current, state) -> (out, state)``; ``out`` is the
    step's spikes, or for a rate neuron (``spiking = False``) its rate.

    ``forward(current, state=None)`` is ``step``, creating a fresh state when none is given. Subclasses
    that can update their state in place override :meth:`step_`; the loops in this module use it only on
    states they created themselves.
    """

    spiking: bool = True
    """``False`` for a rate neuron (:class:`.rate.RateNeuron`): its output at a step is a rate, not a spike."""

    @abc.abstractmethod
    def init_state(self, shape: torch.Size | tuple[int, ...], device: torch.device | str | None = None,
                   dtype: torch.dtype | None = None) -> State:
        """The resting state for currents of ``shape`` (all membranes at rest, nothing fired yet)."""

    @abc.abstractmethod
    def step(self, current: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Advance one time step: ``(spikes, new_state)``. Must not modify ``state``."""

    def membrane_state(self, v: torch.Tensor) -> State:
        """The state with every membrane at ``v`` (shaped like the current, in the threshold's units, below the
        threshold) and nothing fired yet: a run that starts away from rest. The state may hold ``v`` itself."""
        raise NotImplementedError(f"{type(self).__name__} cannot start from given membrane potentials: implement "
                                  "membrane_state(v) to use initial_membrane = 'uniform'")

    def release(self) -> None:
        """Drop whatever the neuron itself keeps of the last run (its state belongs to the caller); called after
        every loop over time steps. Nothing by default: a backend that stores its last state overrides it."""

    def step_(self, current: torch.Tensor, state: State, out: torch.Tensor | None = None) -> tuple[torch.Tensor, State]:
        """Like :meth:`step`, but free to overwrite ``state`` (the caller owns it and drops it) and, when given,
        to write the spikes into ``out`` (a tensor shaped and typed like the current) and return it."""
        spikes, state = self.step(current, state)
        if out is None:
            return spikes, state
        return out.copy_(spikes), state

    def forward(self, current: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        if state is None:
            state = self.init_state(current.shape, current.device, current.dtype)
        return self.step(current, state)


StepFunction = Callable[[torch.Tensor, State], tuple[torch.Tensor, State]]
"""``(current, state) -> (spikes, new_state)``, a neuron's :meth:`Neuron.step` or a compiled copy of it."""

_COMPILED_STEPS: "weakref.WeakKeyDictionary[Neuron, StepFunction]" = weakref.WeakKeyDictionary()


def compiled_step(neuron: Neuron) -> StepFunction:
    """``neuron.step`` compiled by ``torch.compile`` (dynamic shapes: one graph for every batch size), made once
    per neuron and kept while the neuron lives (and freed with it).

    The compiler fuses a step's elementwise operations into one loop. That matters for the wrapped backends,
    whose steps are a dozen separate tensor operations each (snnTorch's ``Leaky``, Norse's cells): compiled they
    run several times faster on a CPU. The fused loop may contract a multiply-add, so a membrane can differ from
    ``neuron.step``'s in the last bit, and a spike only where a membrane lands that close to the threshold (with
    ``beta = 1`` and exact currents the two are bit-identical: the tests). Compiling takes seconds to half a minute
    at the first call; on CPU it needs a C++ compiler (on GPU, Triton). Like ``step``, it never modifies ``state``.
    """
    step = _COMPILED_STEPS.get(neuron)
    if step is None:
        step = _COMPILED_STEPS[neuron] = _held_weakly(torch.compile(type(neuron).step, dynamic=True), neuron)
    return step


def _held_weakly(function: Callable, neuron: Neuron) -> Callable:
    """``function(neuron, *args)`` as a callable of ``*args`` that refers to ``neuron`` weakly: a cache entry keyed
    by the neuron (a ``WeakKeyDictionary``) must not keep its own key alive, or it would never be freed."""
    ref = weakref.ref(neuron)

    def call(*args):
        return function(ref(), *args)

    return call


CountFunction = Callable[[torch.Tensor, State], torch.Tensor]
"""``(current, state) -> counts``: the spike count of every unit over a fixed number of steps under a constant current."""

_COMPILED_COUNTS: "weakref.WeakKeyDictionary[Neuron, dict[int, CountFunction]]" = weakref.WeakKeyDictionary()


def compiled_counts(neuron: Neuron, T: int) -> CountFunction:
    """The whole ``T``-step loop of ``neuron`` under a constant current, compiled by ``torch.compile`` into one
    graph: ``counts(current, state)`` returns the spike count of every unit (shaped like ``current``, values
    ``0..T``) from the membranes in ``state``, which it does not modify. Made once per neuron and ``T``, kept while
    the neuron lives; dynamic shapes (one graph for every batch size).

    Where :func:`compiled_step` fuses one step's operations, this fuses the ``T`` steps too: the current is read
    once and the membrane never leaves the fused loop, so the time loop costs about one pass over memory instead
    of ``T`` steps of stores and reloads (and of fresh tensors, for the wrapped snnTorch and Norse steps). It
    serves inference and rate-based plasticity, which need only the counts; online plasticity needs every
    step's spikes and uses :func:`compiled_step`. The same caveat on the last bit of a membrane holds (with
    ``beta = 1`` and exact currents the counts are bit-identical to the eager loop's: the tests).
    """
    _check_steps(T, "compiled_counts")
    per_neuron = _COMPILED_COUNTS.setdefault(neuron, {})
    counts = per_neuron.get(T)
    if counts is None:
        def loop(cell: Neuron, current: torch.Tensor, state: State) -> torch.Tensor:
            count = torch.zeros_like(current)
            for _ in range(T):  # unrolled by the compiler: T is fixed per graph
                spikes, state = cell.step(current, state)
                count = count + spikes
            return count

        counts = per_neuron[T] = _held_weakly(torch.compile(loop, dynamic=True), neuron)
    return counts


def _check_current(current: torch.Tensor, where: str) -> None:
    if not isinstance(current, torch.Tensor):
        raise TypeError(f"{where}: expected a torch.Tensor current, got {type(current).__name__}")
    if not current.is_floating_point():
        raise TypeError(f"{where}: the current must be a floating-point tensor, got {current.dtype}")


def _check_steps(T: int, where: str) -> None:
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"{where}: T (number of time steps) must be a positive integer, got {T!r}")


@torch.no_grad()
def run(neuron: Neuron, currents: torch.Tensor, state: State | None = None) -> torch.Tensor:
    """The spike train ``(T, B, ...)`` of ``neuron`` driven by ``currents (T, B, ...)``, time first (for a rate
    neuron its rate at every step).

    Starts from ``neuron.init_state`` unless ``state`` is given (a given state is not modified).
    """
    _check_current(currents, "run")
    if currents.dim() < 2:
        raise ValueError(f"run: expected currents shaped (T, B, ...) with time first, got shape "
                         f"{tuple(currents.shape)}; for one constant current use rates(neuron, current, T)")
    owned = state is None
    if owned:
        state = neuron.init_state(currents.shape[1:], currents.device, currents.dtype)
    step = neuron.step_ if owned else neuron.step
    spikes = torch.empty_like(currents)
    for t in range(currents.shape[0]):
        spikes[t], state = step(currents[t], state)
    return spikes


@torch.no_grad()
def rates(neuron: Neuron, current: torch.Tensor, T: int, state: State | None = None) -> torch.Tensor:
    """Spike count / ``T`` of ``neuron`` under the constant ``current`` held for ``T`` steps (same shape as it);
    for a rate neuron its rate ``act(current)``, whatever ``T``.

    Starts from ``neuron.init_state`` unless ``state`` is given (a given state is not modified).
    """
    _check_current(current, "rates")
    _check_steps(T, "rates")
    if not neuron.spiking:  # no memory: every step puts out the same rate, which is the mean
        out = neuron.step(current, neuron.init_state(current.shape) if state is None else state)[0]
        return out.clone() if out is current else out   # (an identity nonlinearity must not hand back the input)
    owned = state is None
    if owned:
        state = neuron.init_state(current.shape, current.device, current.dtype)
    count = torch.zeros_like(current)
    for _ in range(T):
        spikes, state = neuron.step_(current, state) if owned else neuron.step(current, state)
        count += spikes
    return count / T

"""Spiking neurons and encoders: rates converge, the backends agree spike for spike, errors are clear."""
import math

import pytest
import torch

from liouna_snn.neurons import (
    NEURONS, SPIKING_NEURONS, IntegrateAndFire, NativeLIF, NorseLIF, NorseLIFBox, SnnTorchLeaky, bernoulli_rate,
    beta_to_tau_mem_inv, constant_current, latency, lif_step, make_neuron, poisson_rate, rates, run,
    tau_mem_inv_to_beta,
)

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit.script deprecation inside Norse


def random_currents(dtype=torch.float32, T=50, shape=(4, 50), seed=0):
    """T = 50 steps of 200 neurons; mean 0.25, sd 0.6: some neurons silent, some above 2 * threshold."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(T, *shape, generator=g, dtype=torch.float64) * 0.6 + 0.25).to(dtype)


def trajectory(neuron, currents, inplace=False):
    """Spikes (T, ...) and the state's membrane after every step (T, ...)."""
    state = neuron.init_state(currents.shape[1:], dtype=currents.dtype)
    spikes, membranes = [], []
    for current in currents:
        s, state = (neuron.step_ if inplace else neuron.step)(current, state)
        spikes.append(s)
        membranes.append((state if torch.is_tensor(state) else state.v).clone())
    return torch.stack(spikes), torch.stack(membranes)


# --- integrate-and-fire: the spiking counterpart of clamp(relu(u) / threshold, max=1) -----------------------

@pytest.mark.parametrize("threshold", [1.0, 0.5])
def test_integrate_and_fire_rate_converges_to_clamped_relu(threshold):
    neuron = IntegrateAndFire(threshold=threshold)
    u = torch.cat([torch.linspace(-1.0, 2.5, 141, dtype=torch.float64) * threshold,
                   torch.tensor([0.0, 1e-3, threshold, 1.0001 * threshold], dtype=torch.float64)])
    target = neuron.limit_rate(u)
    max_errors = []
    for T in (4, 16, 64):
        err = target - rates(neuron, u, T)
        # Proven bound (see IntegrateAndFire): 0 <= limit - rate <= 1/T, exactly 0 for u <= 0 and u > threshold.
        assert err.min() >= -1e-12, "the rate never exceeds its limit"
        assert err.max() <= 1 / T + 1e-12
        assert torch.all(err[(u <= 0) | (u > threshold)] == 0)
        max_errors.append(float(err.max()))
    assert max_errors[0] > max_errors[1] > max_errors[2] <= 1 / 64 + 1e-12
    # The bound is tight at u = threshold: the first step lands exactly on threshold and does not fire.
    assert rates(neuron, torch.tensor([threshold], dtype=torch.float64), 64).item() == 1 - 1 / 64


# --- backends agree -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("beta,threshold", [(0.9, 1.0), (1.0, 1.0), (0.5, 0.75)])
def test_native_lif_is_bit_identical_to_snntorch_leaky(dtype, reset, beta, threshold):
    currents = random_currents(dtype)
    native_spikes, native_v = trajectory(NativeLIF(beta, threshold, reset), currents)
    snn_spikes, snn_v = trajectory(SnnTorchLeaky(beta, threshold, reset), currents)
    assert 0.05 < native_spikes.mean() < 0.5 and native_v.max() > 2 * threshold  # a non-trivial regime
    assert snn_spikes.dtype == dtype
    assert torch.equal(native_spikes, snn_spikes)
    assert torch.equal(native_v, snn_v)
    # The in-place step (used by run/rates) gives the same bits as the pure one.
    inplace_spikes, inplace_v = trajectory(NativeLIF(beta, threshold, reset), currents, inplace=True)
    assert torch.equal(inplace_spikes, native_spikes) and torch.equal(inplace_v, native_v)
    assert torch.equal(run(NativeLIF(beta, threshold, reset), currents), native_spikes)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("beta,v_reset", [(0.9, 0.0), (0.5, 0.0), (0.9, -0.2)])
def test_zero_reset_spike_trains_match_across_all_backends(dtype, beta, v_reset):
    currents = random_currents(dtype, seed=1)
    threshold = 1.0
    native_spikes, native_v = trajectory(NativeLIF(beta, threshold, "zero", v_reset), currents)
    lif_spikes, lif_v = trajectory(NorseLIF(beta, threshold, v_reset=v_reset), currents)
    box_spikes, box_v = trajectory(NorseLIFBox(beta, threshold, "zero", v_reset), currents)
    assert 0.05 < native_spikes.mean() < 0.5

    # Norse's LIFCell with dt * tau_syn_inv = 1 is LIFBoxCell bit for bit (its synaptic current empties every step).
    assert torch.equal(lif_spikes, box_spikes) and torch.equal(lif_v, box_v)
    state = NorseLIF(beta).init_state(currents.shape[1:], dtype=dtype)
    for current in currents[:5]:
        _, state = NorseLIF(beta).step(current, state)
        assert torch.all(state.i == 0)

    # Norse computes v + a * (I / a - v) instead of beta * v + I, so its membranes (after reset) differ from ours
    # by rounding only. A spike can differ only where our membrane is within that distance of the threshold:
    # check that no membrane came that close, and then that the trains are identical.
    native_after_reset = torch.where(native_spikes.bool(), torch.full_like(native_v, v_reset), native_v)
    rounding = float((native_after_reset - box_v).abs().max())
    margin = float((native_v - threshold).abs().min())
    eps = torch.finfo(dtype).eps
    assert rounding < 64 * eps and rounding < margin
    assert torch.equal(native_spikes, box_spikes)
    if v_reset == 0.0:
        assert torch.equal(native_spikes, trajectory(SnnTorchLeaky(beta, threshold, "zero"), currents)[0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("beta,threshold", [(0.9, 1.0), (0.5, 0.75)])
def test_subtract_reset_spike_trains_match_across_native_snntorch_and_norse_lifbox(dtype, beta, threshold):
    currents = random_currents(dtype, seed=2)
    native_spikes, native_v = trajectory(NativeLIF(beta, threshold, "subtract"), currents)
    box_spikes, box_v = trajectory(NorseLIFBox(beta, threshold, "subtract"), currents)
    assert 0.05 < native_spikes.mean() < 0.5 and native_v.max() > 2 * threshold  # a non-trivial regime
    # Norse's state is the membrane after its reset, v - threshold / beta where it spiked (the leak then removes
    # exactly threshold); it and its leak's arithmetic differ from ours by rounding only, and no membrane came
    # within that distance of the threshold, so the trains are identical.
    native_after_reset = native_v - native_spikes * (threshold / beta)
    rounding = float((native_after_reset - box_v).abs().max())
    margin = float((native_v - threshold).abs().min())
    assert rounding < 64 * torch.finfo(dtype).eps and rounding < margin
    assert torch.equal(native_spikes, box_spikes)
    assert torch.equal(native_spikes, trajectory(SnnTorchLeaky(beta, threshold, "subtract"), currents)[0])


def test_norse_own_reset_subtract_is_another_neuron_so_the_wrapper_does_not_use_it():
    # Norse's reset_subtract: v[t] = beta * (v[t-1] - threshold * s[t-1]) + I[t]; ours, snnTorch's and the
    # wrapper's subtract after the leak. Same neuron only for beta = 1, which Norse cannot express.
    import norse.torch as norse

    currents = random_currents(torch.float64, seed=2)
    beta, threshold = 0.9, 1.0
    v = torch.zeros(currents.shape[1:], dtype=torch.float64)
    expected = []
    for current in currents:
        v = beta * v + current
        s = (v > threshold).double()
        v = v - threshold * s
        expected.append(s)
    box = NorseLIFBox(beta, threshold, "subtract")
    box.cell.p = box.cell.p._replace(reset_method=norse.reset_subtract)
    norse_own = run(box, currents)
    assert torch.equal(norse_own, torch.stack(expected))
    assert not torch.equal(norse_own, run(NativeLIF(beta, threshold, "subtract"), currents))
    assert torch.equal(run(NorseLIFBox(beta, threshold, "subtract"), currents),
                       run(NativeLIF(beta, threshold, "subtract"), currents))
    with pytest.raises(ValueError, match="norse-lifbox: a subtractive reset needs beta > 0"):
        make_neuron("norse-lifbox", beta=0.0, reset="subtract")


def test_snntorch_reset_delay_false_loses_spikes_so_it_is_not_used():
    # Why the wrapper keeps snnTorch's default reset_delay=True: with False, a membrane still above threshold
    # after its reset stays there without firing. Input 2.5, 0, ... with threshold 1 and no leak fires twice.
    import snntorch

    currents = torch.tensor([2.5, 0.0, -0.2, 0.1, 0.0]).view(5, 1)
    expected = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0]).view(5, 1)
    assert torch.equal(run(IntegrateAndFire(), currents), expected)
    assert torch.equal(run(SnnTorchLeaky(beta=1.0), currents), expected)
    leaky, mem, spikes = snntorch.Leaky(beta=1.0, reset_delay=False, surrogate_disable=True), torch.zeros(1), []
    for current in currents:
        s, mem = leaky(current, mem)
        spikes.append(s)
    assert torch.stack(spikes).sum() == 1 and mem.item() > 1.0


def test_beta_and_norse_time_constant_map_both_ways():
    from norse.torch import LIFParameters as NorseLIFParameters

    # Norse's defaults (tau_mem_inv = 100 /s, dt = 1 ms) are beta = 0.9.
    assert tau_mem_inv_to_beta(float(NorseLIFParameters().tau_mem_inv), 1e-3) == pytest.approx(0.9)
    assert beta_to_tau_mem_inv(0.9, 1e-3) == pytest.approx(100.0)
    for beta, dt in [(0.0, 1e-3), (0.5, 1e-4), (0.95, 0.01)]:
        assert tau_mem_inv_to_beta(beta_to_tau_mem_inv(beta, dt), dt) == pytest.approx(beta)
    # Norse's cell carries the mapped parameters; its spikes do not depend on dt.
    cell = NorseLIF(beta=0.9, dt=1e-4).cell
    assert float(cell.p.tau_mem_inv) == pytest.approx(1000.0) and float(cell.p.tau_syn_inv) * 1e-4 == 1.0
    currents = random_currents()
    assert torch.equal(run(NorseLIF(0.9, dt=1e-4), currents), run(NorseLIF(0.9, dt=1e-3), currents))


@pytest.mark.parametrize("name", ["norse-lif", "norse-lifbox"])
def test_norse_neurons_take_norse_units_too(name):
    """``tau_mem_inv`` (1/s at ``dt``) and ``v_th`` in place of ``beta`` and ``threshold``: the same neuron."""
    ours = make_neuron(name, beta=0.8, threshold=0.75, dt=1e-3)
    norse = make_neuron(name, tau_mem_inv=200.0, v_th=0.75, dt=1e-3)
    assert norse.p.beta == pytest.approx(0.8) and norse.p.threshold == 0.75
    assert float(norse.cell.p.tau_mem_inv) == 200.0 and float(norse.cell.p.v_th) == 0.75   # Norse's own, unrounded
    currents = random_currents()
    assert torch.equal(run(norse, currents), run(ours, currents))
    assert make_neuron(name).p.beta == 0.9 and make_neuron(name).p.threshold == 1.0   # Norse's defaults
    with pytest.raises(ValueError, match="beta .* or tau_mem_inv .*not both"):
        make_neuron(name, beta=0.9, tau_mem_inv=100.0)
    with pytest.raises(ValueError, match="threshold .* or v_th .*not both"):
        make_neuron(name, threshold=1.0, v_th=1.0)
    with pytest.raises(ValueError, match="0 < dt \\* tau_mem_inv <= 1"):
        make_neuron(name, tau_mem_inv=2000.0, dt=1e-3)


# --- the interface ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(SPIKING_NEURONS))
def test_every_spiking_neuron_follows_the_interface(name):
    neuron = make_neuron(name)
    currents = random_currents(T=6, shape=(2, 3, 4))
    given = neuron.init_state(currents.shape[1:], dtype=currents.dtype)
    before = [t.clone() for t in (given if isinstance(given, tuple) else (given,))]
    spikes = run(neuron, currents, state=given)
    assert spikes.shape == currents.shape and spikes.dtype == currents.dtype
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    assert all(torch.equal(a, b) for a, b in zip(before, given if isinstance(given, tuple) else (given,)))
    assert torch.equal(run(neuron, currents), spikes)
    # forward = step from rest; rates of a constant current = mean of its spike train.
    first, _ = neuron(currents[0])
    assert torch.equal(first, spikes[0])
    constant = currents[0].abs() * 0.8
    assert torch.equal(rates(neuron, constant, 10), run(neuron, constant.expand(10, *constant.shape)).mean(0))


@pytest.mark.parametrize("compiled", [False, True])
def test_no_neuron_keeps_a_batch_of_state_after_a_loop(compiled):
    """snnTorch's Leaky stores its last membrane and reset signal on itself; the loop over time releases them."""
    from liouna_snn.neurons import compiled_counts
    from liouna_snn.spiking import spike_counts

    neuron = make_neuron("snntorch-leaky", reset="zero")
    current = torch.rand(16, 8, 6, 6, generator=torch.Generator().manual_seed(0))
    counts = spike_counts(neuron, current, 5, loop=compiled_counts(neuron, 5) if compiled else None)
    assert counts.sum() > 0
    kept = [t for t in (getattr(neuron.leaky, "mem", None), getattr(neuron.leaky, "reset", None))
            if isinstance(t, torch.Tensor)]
    assert all(t.numel() == 0 for t in kept)
    assert torch.equal(spike_counts(neuron, current, 5), counts)   # and the next run is unaffected


def test_compiled_loops_are_freed_with_their_neuron():
    import gc
    import weakref
    from liouna_snn.neurons import compiled_counts, compiled_step

    neuron = make_neuron("native-lif")
    current = torch.rand(2, 3)
    compiled_step(neuron)(current, neuron.init_state(current.shape))
    compiled_counts(neuron, 3)(current, neuron.init_state(current.shape))
    gone = weakref.ref(neuron)
    del neuron
    gc.collect()
    assert gone() is None   # the caches, keyed by the neuron, let it go


def test_make_neuron_errors_name_the_allowed_choices():
    with pytest.raises(ValueError, match="unknown neuron 'lif'.*rate.*native-lif.*integrate-and-fire.*snntorch-leaky"
                                         ".*norse-lif.*norse-lifbox"):
        make_neuron("lif")
    with pytest.raises(ValueError, match="unknown parameter.*tau_mem.*'native-lif'.*allowed: beta, threshold, "
                                         "reset, v_reset"):
        make_neuron("native-lif", tau_mem=10.0)
    with pytest.raises(ValueError, match="unknown parameter.*beta.*allowed: threshold$"):
        make_neuron("integrate-and-fire", beta=0.9)
    with pytest.raises(ValueError, match=r"beta .* must be in \[0, 1\]"):
        make_neuron("snntorch-leaky", beta=1.5)
    with pytest.raises(ValueError, match="unknown LIF reset 'soft'; allowed: subtract, zero"):
        make_neuron("native-lif", reset="soft")
    with pytest.raises(ValueError, match="threshold must be > 0"):
        make_neuron("native-lif", threshold=0.0)
    with pytest.raises(ValueError, match="norse-lif.*only resets to v_reset"):
        make_neuron("norse-lif", reset="subtract")
    with pytest.raises(ValueError, match="snntorch-leaky.*v_reset must be 0"):
        make_neuron("snntorch-leaky", reset="zero", v_reset=-0.5)
    with pytest.raises(ValueError, match="beta = 1 .* not expressible in Norse"):
        make_neuron("norse-lifbox", beta=1.0)
    assert make_neuron("native-lif", beta=0.8).p.beta == 0.8


def test_run_and_rates_reject_bad_shapes_and_step_counts():
    with pytest.raises(ValueError, match=r"\(T, B, \.\.\.\)"):
        run(NativeLIF(), torch.zeros(5))
    with pytest.raises(ValueError, match="positive integer"):
        rates(NativeLIF(), torch.zeros(3), 0)
    with pytest.raises(TypeError, match="floating-point"):
        rates(NativeLIF(), torch.zeros(3, dtype=torch.long), 4)


def test_lif_step_is_pure():
    v = torch.tensor([0.5, 1.5, -0.3])
    v_before = v.clone()
    spikes, v_new = lif_step(torch.tensor([0.6, 0.0, 0.1]), v, NativeLIF().p)
    assert torch.equal(v, v_before) and v_new is not v
    # v = 1.5 fired last step: 0.9 * 1.5 + 0 - 1 = 0.35; v = 0.5: 0.45 + 0.6 = 1.05 fires.
    assert torch.allclose(v_new, torch.tensor([1.05, 0.35, -0.17])) and spikes.tolist() == [1.0, 0.0, 0.0]


@pytest.mark.parametrize("name,params", [("native-lif", {"beta": 0.9, "reset": "subtract"}),
                                         ("native-lif", {"beta": 0.8, "reset": "zero", "v_reset": -0.2}),
                                         ("integrate-and-fire", {}), ("snntorch-leaky", {"beta": 0.9})])
def test_in_place_steps_into_a_spike_buffer_give_the_same_bits(name, params):
    """step_(..., out=buffer), the fast path of the spiking layers, equals the pure step bit for bit (membranes
    and spikes, reset and leak included) and returns the buffer itself."""
    neuron = make_neuron(name, threshold=0.7, **params)
    currents = torch.randn(12, 4, 50, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    pure = neuron.init_state((4, 50), dtype=torch.float64)
    fast = neuron.init_state((4, 50), dtype=torch.float64)
    out = torch.empty(4, 50, dtype=torch.float64)
    fired = 0.0
    for current in currents:
        spikes, pure = neuron.step(current, pure)
        written, fast = neuron.step_(current, fast, out=out)
        assert written is out and torch.equal(written, spikes)
        torch.testing.assert_close(fast, pure, rtol=0, atol=0)
        fired += float(spikes.sum())
    assert 0 < fired < currents.numel()  # some spikes, not all: resets happened


# --- encoders -----------------------------------------------------------------------------------------------------

def test_bernoulli_rate_matches_probability_within_binomial_bound():
    x = torch.linspace(0, 1, 11).repeat(50, 1).T  # (11 levels, 50 units)
    T = 400
    spikes = bernoulli_rate(x, T, generator=torch.Generator().manual_seed(0))
    assert spikes.shape == (T, 11, 50) and spikes.dtype == x.dtype
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    rate = spikes.mean(0)
    sd = (x * (1 - x) / T).sqrt()
    assert torch.all((rate - x).abs() <= 5 * sd + 1e-6)  # per unit: count ~ Binomial(T, x)
    pooled = rate.mean(1)
    assert torch.all((pooled - x[:, 0]).abs() <= 5 * sd[:, 0] / math.sqrt(50) + 1e-6)
    assert torch.all(rate[0] == 0) and torch.all(rate[-1] == 1)  # x = 0 never fires, x = 1 always


def test_bernoulli_rate_is_deterministic_for_a_seeded_generator():
    x = torch.rand(3, 7, generator=torch.Generator().manual_seed(5))
    a = bernoulli_rate(x, 20, generator=torch.Generator().manual_seed(1))
    b = bernoulli_rate(x, 20, generator=torch.Generator().manual_seed(1))
    c = bernoulli_rate(x, 20, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("bad", [torch.tensor([0.2, -0.1]), torch.tensor([1.1, 0.5]), torch.tensor([0.5, float("nan")])])
def test_encoders_reject_values_outside_the_unit_interval(bad):
    for encode in (bernoulli_rate, poisson_rate, latency):
        with pytest.raises(ValueError, match=r"in \[0, 1\]"):
            encode(bad, 4)
    with pytest.raises(ValueError, match="positive integer"):
        bernoulli_rate(torch.tensor([0.5]), 0)


def test_poisson_rate_wraps_norse_with_rates_in_hertz():
    x = torch.rand(4, 25, generator=torch.Generator().manual_seed(3))
    # f_max * dt = 1 spike per step: Norse's draws are exactly ours.
    assert torch.equal(poisson_rate(x, 30, f_max=1000.0, dt=1e-3, generator=torch.Generator().manual_seed(4)),
                       bernoulli_rate(x, 30, generator=torch.Generator().manual_seed(4)))
    # Defaults 100 Hz at 1 ms: x = 1 fires with probability 0.1 per step.
    spikes = poisson_rate(torch.ones(1000), 50, generator=torch.Generator().manual_seed(0))
    assert abs(float(spikes.mean()) - 0.1) < 5 * math.sqrt(0.1 * 0.9 / spikes.numel())
    with pytest.raises(ValueError, match=r"f_max \* dt <= 1"):
        poisson_rate(x, 5, f_max=2000.0, dt=1e-3)


def test_constant_current_and_latency():
    x = torch.tensor([[0.0, 0.1, 0.5, 1.0]])
    value, T = constant_current(x, 8)
    assert value is x and T == 8
    spikes = latency(x, 8)
    assert spikes.shape == (8, 1, 4) and spikes.sum(0).tolist() == [[0.0, 1.0, 1.0, 1.0]]
    first = spikes.argmax(0)[0].tolist()
    assert first[1:] == [7, 4, 0]  # floor((1 - x) * T): brighter fires earlier, x = 1 at step 0


def test_norse_neurons_build_without_norses_own_deprecation_warning():
    """Norse decorates functions with ``torch.jit.script``, which recent torch deprecates with a FutureWarning on
    import; the wrappers import Norse with that one warning hidden (a fresh interpreter: Norse not yet loaded)."""
    import subprocess
    import sys

    code = ("import warnings; warnings.simplefilter('error')\n"
            "from liouna_snn.neurons import make_neuron\n"
            "make_neuron('norse-lif', beta=0.9, threshold=1.0); make_neuron('norse-lifbox', beta=0.9)\n"
            "import norse.torch.functional.correlation_sensor\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


# --- the rate neuron ----------------------------------------------------------------------------------------------

def test_the_rate_neuron_is_its_nonlinearity_at_every_step_behind_the_same_interface():
    from liouna_snn.neurons import RateNeuron
    from liouna_snn.neurons.rate import Triangle

    assert SPIKING_NEURONS == tuple(n for n in NEURONS if n != "rate") and NEURONS["rate"] is RateNeuron
    neuron = make_neuron("rate", activation="triangle", power=0.7)
    assert not neuron.spiking and isinstance(neuron.activation, Triangle) and neuron.activation.power == 0.7
    currents = random_currents(T=5, shape=(2, 6, 3))
    expected = torch.relu(currents - currents.mean(dim=2, keepdim=True)) ** 0.7   # dim 1 of each step's (B, K, L)
    torch.testing.assert_close(run(neuron, currents), expected, rtol=1e-6, atol=1e-7)
    assert neuron.init_state(currents.shape[1:]) == ()
    # no memory: the rate of a constant current is the nonlinearity itself, for every T, and equals the run's mean
    constant = currents[0]
    for T in (1, 7):
        assert torch.equal(rates(neuron, constant, T), neuron.activation(constant))
    torch.testing.assert_close(run(neuron, constant.expand(7, *constant.shape)).mean(0), rates(neuron, constant, 7))
    relu = make_neuron("rate", activation="relu")
    assert torch.equal(relu(constant)[0], torch.relu(constant))


def test_the_integrate_and_fire_rate_approaches_the_rate_neuron_of_a_clipped_relu():
    """Under a constant current the non-leaky neuron's rate tends to ``clamp(I / threshold, 0, 1)``: the rate neuron
    of that nonlinearity, the limit the spiking layers approximate. Error at most one spike in T (from rest)."""
    clipped = make_neuron("rate", activation=torch.nn.Hardtanh(0.0, 1.0))
    current = torch.linspace(-0.5, 1.5, 201, dtype=torch.float64)
    errors = [(rates(IntegrateAndFire(threshold=1.0), current, T) - rates(clipped, current, T)).abs().max().item()
              for T in (4, 16, 64)]
    assert all(e <= 1 / T + 1e-12 for e, T in zip(errors, (4, 16, 64))) and errors[2] < errors[1] < errors[0]


def test_rate_neuron_errors_are_clear():
    from liouna_snn.neurons import RateNeuron
    from liouna_snn.spiking import SpikingConfig

    with pytest.raises(ValueError, match="unknown activation 'softplus'; allowed: triangle, relu"):
        make_neuron("rate", activation="softplus")
    with pytest.raises(ValueError, match="bad parameters.*'relu'"):
        make_neuron("rate", activation="relu", power=2.0)
    with pytest.raises(ValueError, match="power is a parameter of the named activation 'triangle'"):
        RateNeuron(torch.nn.ReLU(), power=2.0)
    with pytest.raises(TypeError, match="activation must be a name"):
        RateNeuron(3)
    with pytest.raises(ValueError, match="has no membrane"):
        make_neuron("rate").membrane_state(torch.zeros(3))
    with pytest.raises(ValueError, match="neuron='rate' is a rate neuron, which does not spike.*native-lif"):
        SpikingConfig(neuron="rate")

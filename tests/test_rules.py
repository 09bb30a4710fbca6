"""The math of the Liouna family: the two forms agree, the members are what they claim to be."""
import math

import pytest
import torch
import torch.nn.functional as F

from liouna_snn.rules import (
    LINEAR, ConvGeometry, LocalRule, anti_hebbian, coverage, energy_update, explicit_update, factor,
    predict_input, rule_config, softhebb_reference_update,
)


def rel_err(a, b):
    return float((a - b).norm() / b.norm())


def _random_case(kind, stride, padding, seed=0):
    g = torch.Generator().manual_seed(seed)
    if kind == "linear":
        x = torch.randn(5, 7, generator=g, dtype=torch.float64)
        w = torch.randn(4, 7, generator=g, dtype=torch.float64)
        c = torch.relu(x @ w.T)
        return x, w, c, LINEAR
    x = torch.randn(3, 2, 7, 8, generator=g, dtype=torch.float64)
    w = torch.randn(4, 2, 3, 3, generator=g, dtype=torch.float64)
    geom = ConvGeometry(stride, padding, "zeros")
    c = torch.relu(F.conv2d(x, w, stride=stride, padding=padding))
    return x, w, c, geom


@pytest.mark.parametrize("kind,stride,padding", [("linear", 1, 0), ("conv", 1, 0), ("conv", 1, 1),
                                                 ("conv", 2, 0), ("conv", 2, 1)])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("lambda_v", [1.0, 0.3])
@pytest.mark.parametrize("inhibition", ["population", "column"])
def test_explicit_and_energy_forms_agree(kind, stride, padding, masked, lambda_v, inhibition):
    x, w, c, geom = _random_case(kind, stride, padding)
    visible = None
    if masked:
        g = torch.Generator().manual_seed(1)
        shape = x.shape if kind == "linear" else (x.shape[0], 1, *x.shape[2:])
        visible = (torch.rand(shape, generator=g) > 0.4).double()
    explicit = explicit_update(x, c, c, w, geom, visible=visible, lambda_v=lambda_v, inhibition=inhibition)
    energy = energy_update(x, c, w, geom, visible=visible, lambda_v=lambda_v, inhibition=inhibition)
    assert explicit.shape == w.shape
    assert energy.norm() > 0
    assert rel_err(explicit, energy) < 1e-5


def test_coverage_counts_positions():
    kappa = coverage((6, 6), (3, 3), (6, 6), ConvGeometry(1, 1))
    assert kappa.shape == (1, 1, 6, 6)
    assert kappa[0, 0, 2, 2] == 9 and kappa[0, 0, 0, 0] == 4 and kappa[0, 0, 0, 3] == 6
    # stride 2, kernel 1: every other element is seen by nobody -> clamped to 1 (and never used).
    kappa = coverage((3, 3), (1, 1), (6, 6), ConvGeometry(2, 0))
    assert kappa.min() == 1 and kappa.max() == 1


def test_prediction_of_orthonormal_code_reconstructs_input():
    # A 1x1 conv with orthonormal weights and c = u predicts its input exactly (unit norm is a fixed point).
    q, _ = torch.linalg.qr(torch.randn(5, 5, dtype=torch.float64))
    w = q.reshape(5, 5, 1, 1)
    x = torch.randn(2, 5, 4, 4, dtype=torch.float64)
    u = F.conv2d(x, w)
    assert torch.allclose(predict_input(u, w, (4, 4), ConvGeometry()), x, atol=1e-10)
    assert explicit_update(x, u, u, w, ConvGeometry()).abs().max() < 1e-10


def test_kappa_puts_a_5x5_prediction_on_the_input_scale():
    # Constant input, a unit-norm constant filter, and a code equal to the filter's projection: away
    # from the borders the prediction equals the input (it would be 25x too large without kappa).
    w = torch.full((1, 1, 5, 5), 1 / 5.0, dtype=torch.float64)
    x = torch.ones(1, 1, 12, 12, dtype=torch.float64)
    c = torch.full((1, 1, 12, 12), 1.0, dtype=torch.float64) * 5.0  # ||w||=1 and <w, patch> = 5 -> c w = x patch
    x_hat = predict_input(c, w, (12, 12), ConvGeometry(1, 2))
    assert torch.allclose(x_hat[..., 2:-2, 2:-2], x[..., 2:-2, 2:-2])


def test_self_inhibition_matches_per_patch_formula_with_mask():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 2, 5, 5, generator=g, dtype=torch.float64)
    w = torch.randn(3, 2, 3, 3, generator=g, dtype=torch.float64)
    geom = ConvGeometry(1, 1, "reflect")
    visible = (torch.rand(2, 1, 5, 5, generator=g) > 0.5).double()
    lam = 0.25
    u = F.conv2d(F.pad(x * visible, (1, 1, 1, 1), mode="reflect"), w)
    h = torch.softmax(u, dim=1)
    dw = explicit_update(x, u, h, w, geom, visible=visible, lambda_v=lam, inhibition="self")
    omega = (1 - visible) + lam * visible
    xp = F.unfold(F.pad(x, (1, 1, 1, 1), mode="reflect"), 3)                       # (B, C*9, P)
    op = F.unfold(F.pad(omega.expand_as(x), (1, 1, 1, 1), mode="reflect"), 3)
    wf = w.flatten(1)
    ref = torch.zeros_like(wf)
    for b in range(2):
        for p in range(25):
            for k in range(3):
                hk, ck = h[b, k].flatten()[p], u[b, k].flatten()[p]
                ref[k] += hk * op[b, :, p] * (xp[b, :, p] - ck * wf[k])
    assert rel_err(dw.flatten(1), ref) < 1e-10


@pytest.mark.parametrize("stride,padding,mode", [(1, 1, "reflect"), (2, 0, "zeros"), (1, 2, "zeros")])
def test_softhebb_member_equals_published_per_unit_update(stride, padding, mode):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 6, 6, generator=g, dtype=torch.float64)
    w = torch.randn(5, 3, 3, 3, generator=g, dtype=torch.float64) * 0.3
    geom = ConvGeometry(stride, padding, mode)
    rule = LocalRule(rule_config("softhebb", inverse_temperature=0.65))
    x_p = F.pad(x, (padding,) * 4, mode="constant" if mode == "zeros" else mode) if padding else x
    u = F.conv2d(x_p, w, stride=stride)
    dw = rule.delta(x, u, u, w, geom)
    ref = softhebb_reference_update(x, w, geom, inverse_temperature=0.65)
    assert rel_err(dw, ref) < 1e-10


def test_softhebb_learning_rate_and_scaling():
    rule = LocalRule(rule_config("softhebb", lr=0.08))
    w = torch.zeros(3, 4)
    w[0, 0], w[1, 0], w[2, 0] = 5.0, 1.0, 0.5
    lr = rule.step_sizes(w, 0.0).flatten()
    assert torch.allclose(lr, torch.tensor([0.08 * 2.0, 0.08 * 1e-5, 0.08 * math.sqrt(0.5)]), rtol=1e-4)
    dw = torch.tensor([[4.0, -8.0, 0, 0], [1.0, 0, 0, 0], [2.0, 0, 0, 0]])
    assert rule.scale(dw).abs().max() == 1.0 and rule.scale(dw)[0, 1] == -1.0
    per_unit = LocalRule(rule_config("softhebb", scaling="unit-maxabs")).scale(dw)
    assert torch.allclose(per_unit.abs().amax(dim=1), torch.ones(3))


def test_oja_member_finds_top_principal_subspace():
    g = torch.Generator().manual_seed(0)
    dim, k = 8, 3
    basis, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
    scales = torch.tensor([3.0, 2.5, 2.0, 0.6, 0.5, 0.4, 0.3, 0.2], dtype=torch.float64)
    rule = LocalRule(rule_config("oja", lr=2e-3))
    w = torch.randn(k, dim, generator=g, dtype=torch.float64) * 0.1
    for _ in range(3000):
        x = (torch.randn(32, dim, generator=g, dtype=torch.float64) * scales) @ basis.T
        u = x @ w.T
        rule.apply(w, rule.delta(x, u, u, w, LINEAR))
    top = basis[:, :k]
    q, _ = torch.linalg.qr(w.T)
    cosines = torch.linalg.svdvals(top.T @ q)
    largest_angle = math.degrees(math.acos(min(1.0, float(cosines.min()))))
    assert largest_angle < 5.0
    assert torch.allclose(w @ w.T, torch.eye(k, dtype=torch.float64), atol=0.05)  # orthonormal basis


def test_factors_and_anti_hebbian_signs():
    u = torch.tensor([[1.0, 3.0, 2.0]])
    sm = torch.softmax(u, dim=1)
    assert torch.allclose(factor("softmax-drive", u, u), sm * u)
    assert factor("winner", u, u).tolist() == [[0.0, 1.0, 0.0]]
    h = anti_hebbian(sm, u)
    assert h[0, 1] > 0 and h[0, 0] < 0 and h[0, 2] < 0
    with pytest.raises(ValueError, match="unknown factor 'bogus'"):
        factor("bogus", u, u)


def test_mask_hides_whole_patches_at_the_requested_ratio():
    rule = LocalRule(rule_config("liouna", mask_ratio=0.5, mask_patch=4))
    x = torch.zeros(64, 3, 32, 32)
    m = rule.sample_visible(x, torch.Generator().manual_seed(0))
    assert m.shape == (64, 1, 32, 32)
    blocks = m.unfold(2, 4, 4).unfold(3, 4, 4)  # every 4x4 patch is all-visible or all-hidden
    assert bool(((blocks.amin((-1, -2)) == blocks.amax((-1, -2)))).all())
    assert abs(float(m.mean()) - 0.5) < 0.05
    assert LocalRule(rule_config("liouna")).sample_visible(x) is None


@pytest.mark.parametrize("bad,match", [
    (dict(mask_ratio=1.0), "mask_ratio"),
    (dict(lambda_v=2.0), "lambda_v"),
    (dict(code="bogus"), "code='bogus'.*choose one of"),
    (dict(scaling="max"), "scaling"),
    (dict(learning_rate=0.1), r"unknown rule option\(s\) \['learning_rate'\]"),
    (dict(lr=float("nan")), "lr"),
])
def test_bad_rule_options_are_named(bad, match):
    with pytest.raises(ValueError, match=match):
        rule_config("liouna", **bad)


def test_unknown_rule_lists_allowed():
    with pytest.raises(ValueError, match="unknown rule 'hebbian'; allowed: liouna, softhebb"):
        rule_config("hebbian")


@pytest.mark.parametrize("scaling", ["global-maxabs", "unit-maxabs", "rms"])
def test_update_scalings_follow_their_definitions(scaling):
    dw = torch.randn(7, 3, 2, 2, generator=torch.Generator().manual_seed(0)) * torch.arange(1.0, 8.0).view(-1, 1, 1, 1)
    dw[2].mul_(-1.0)  # a unit whose largest-magnitude entry is negative
    expected = {"global-maxabs": dw.abs().max(),
                "unit-maxabs": dw.flatten(1).abs().max(dim=1).values.view(-1, 1, 1, 1),
                "rms": dw.pow(2).mean().sqrt()}[scaling]
    scaled = LocalRule(rule_config("liouna", scaling=scaling)).scale(dw)
    torch.testing.assert_close(scaled, dw / expected)
    if scaling != "rms":
        assert float(scaled.abs().max()) == pytest.approx(1.0)


def test_column_inhibition_matches_per_patch_formula_with_mask():
    # dW_k = sum_p h_k,p omega_p (x_p - sum_j c_j,p w_j): each patch predicted by its own column of units.
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 2, 5, 5, generator=g, dtype=torch.float64)
    w = torch.randn(3, 2, 3, 3, generator=g, dtype=torch.float64)
    geom = ConvGeometry(1, 1, "reflect")
    visible = (torch.rand(2, 1, 5, 5, generator=g) > 0.5).double()
    lam = 0.25
    u = F.conv2d(F.pad(x * visible, (1, 1, 1, 1), mode="reflect"), w)
    c, h = torch.relu(u), torch.softmax(u, dim=1)
    dw = explicit_update(x, c, h, w, geom, visible=visible, lambda_v=lam, inhibition="column")
    omega = (1 - visible) + lam * visible
    xp = F.unfold(F.pad(x, (1, 1, 1, 1), mode="reflect"), 3)
    op = F.unfold(F.pad(omega.expand_as(x), (1, 1, 1, 1), mode="reflect"), 3)
    wf = w.flatten(1)
    ref = torch.zeros_like(wf)
    for b in range(2):
        for p in range(25):
            x_hat = sum(c[b, j].flatten()[p] * wf[j] for j in range(3))
            for k in range(3):
                ref[k] += h[b, k].flatten()[p] * op[b, :, p] * (xp[b, :, p] - x_hat)
    assert rel_err(dw.flatten(1), ref) < 1e-10
    # Without a mask the fast path (corr(h, x) - (H^T C) W) gives the same as the masked path at omega = 1.
    fast = explicit_update(x, c, h, w, geom, inhibition="column")
    ones = explicit_update(x, c, h, w, geom, visible=torch.ones_like(visible), lambda_v=1.0, inhibition="column")
    assert rel_err(fast, ones) < 1e-12


def test_column_and_population_inhibition_coincide_for_a_linear_layer():
    # One position: the units covering an element are exactly the column.
    x, w, c, geom = _random_case("linear", 1, 0)
    pop = explicit_update(x, c, c, w, geom, inhibition="population")
    col = explicit_update(x, c, c, w, geom, inhibition="column")
    assert rel_err(col, pop) < 1e-12


def test_winners_are_the_first_largest_drive_and_one_pass_serves_every_factor():
    from liouna_snn.rules import winner_index, winner_mask

    u = torch.tensor([[[[2.0]], [[5.0]], [[5.0]], [[-1.0]]],
                      [[[7.0]], [[0.0]], [[7.0]], [[7.0]]]])            # (B=2, K=4, 1, 1), ties in both samples
    assert winner_index(u).flatten().tolist() == [1, 0]               # ties go to the lowest index, as argmax
    assert torch.equal(winner_index(u), u.argmax(dim=1))
    g = torch.Generator().manual_seed(0)
    u = torch.randn(3, 6, 4, 5, generator=g).round()                   # rounded: many ties
    winners = winner_index(u)
    scatter = torch.zeros_like(u).scatter_(1, u.argmax(dim=1, keepdim=True), 1.0)
    assert torch.equal(winner_mask(u), scatter) and torch.equal(winner_mask(u, winners), scatter)
    h = torch.rand(u.shape, generator=g)
    assert torch.equal(anti_hebbian(h, u, winners), h * (2.0 * scatter - 1.0))
    rule = LocalRule(rule_config("softhebb"))
    c, h_rule = rule.factors(u, u)
    c_given, h_given = rule.factors(u, u, winners)
    assert torch.equal(c, c_given) and torch.equal(h_rule, h_given)
    assert rule.reads_winners and not LocalRule(rule_config("liouna")).reads_winners


@pytest.mark.parametrize("stride", [1, 2])
def test_channels_last_patch_rows_are_the_kernel_order_rows_permuted(stride):
    from liouna_snn.rules.liouna import correlate, from_channels_last_kernel, patch_rows

    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 5, 9, 8, generator=g, dtype=torch.float64)
    rows = patch_rows(x, (3, 2), stride)                                  # (B*P, C*kh*kw)
    rows_cl = patch_rows(x, (3, 2), stride, kernel_order=False)           # (B*P, kh*kw*C)
    assert torch.equal(rows_cl.view(-1, 3, 2, 5).permute(0, 3, 1, 2).reshape(rows.shape), rows)
    w_shape = torch.Size((4, 5, 3, 2))
    assert torch.equal(from_channels_last_kernel(rows_cl[:4].contiguous(), w_shape, torch.float64),
                       rows[:4].reshape(w_shape))
    # the correlation is the weight gradient of the convolution
    h = torch.randn(2, 4, (9 - 3) // stride + 1, (8 - 2) // stride + 1, generator=g, dtype=torch.float64)
    grad = torch.nn.grad.conv2d_weight(x, w_shape, h, stride=stride)
    assert rel_err(correlate(h, x, w_shape, stride), grad) < 1e-12
    with pytest.raises(ValueError, match="does not fit"):
        patch_rows(x[..., :1], (3, 2), stride, kernel_order=False)


def test_self_inhibition_is_the_hebbian_term_minus_the_units_own_prediction():
    g = torch.Generator().manual_seed(2)
    x, w = torch.randn(2, 3, 6, 6, generator=g), torch.randn(4, 3, 3, 3, generator=g)
    geom = ConvGeometry(1, 1, "zeros")
    u = F.conv2d(x, w, padding=1)
    h, c = torch.softmax(u, dim=1), u
    from liouna_snn.rules.liouna import correlate
    expected = correlate(h, F.pad(x, (1, 1, 1, 1)), w.shape, 1) - (h * c).sum(dim=(0, 2, 3)).view(-1, 1, 1, 1) * w
    # to float32 rounding: the update subtracts the product in place, where a fused multiply-add may round once
    torch.testing.assert_close(explicit_update(x, c, h, w, geom, inhibition="self"), expected, rtol=1e-6, atol=1e-6)

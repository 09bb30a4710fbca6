"""The Liouna rule: masked predictive coding reduced to a Hebbian term minus subtractive inhibition.

One layer with weights ``W (K, C, k, k)`` sees an input ``x (B, C, H, W)`` (a linear layer is the
1x1 case, see :mod:`liouna_snn.rules.geometry`). With a visibility mask ``m`` (1 = visible):

    u     = W * (m x)                                   drive (the layer's convolution)
    c     = g(u),  h = f(u)                             code, Hebbian factor  (see ``factors``)
    x_hat = conv_transpose(c, W) / kappa                tied-weight top-down prediction
    e     = omega (x - x_hat) / kappa,  omega = (1 - m) + lambda_v m
    dW    = corr(h, e)                                  population (subtractive) inhibition
    dW_k  = sum_p h_k,p omega_p (x_p - sum_j c_j,p w_j)  column inhibition (units sharing patch p)
    dW_k  = sum_patches h_k omega (x - c_k w_k)         self-only inhibition

Population inhibition predicts every input element from all the units whose receptive fields cover
it (overlapping positions, divided by the coverage ``kappa``). Column inhibition keeps only the
units at the same output position: each patch ``x_p`` is predicted by the column of ``K`` units
that all see exactly it, ``x_hat_p = W^T c_p``, the linear-layer rule applied patch by patch. An
overcomplete convolution (96 filters 5x5 over 75 inputs, 25 overlapping positions per pixel) can
predict its input well with random filters once their norms fit, so the population error carries
little pressure on the filters' directions; the column error does not have that escape.

``corr(h, e)`` correlates each unit's factor with the error over the patch it sees: the weight
gradient of a convolution with input ``e`` and output gradient ``h``. When ``h = c`` the
population update is exactly ``-dE/dW`` of ``E = 1/2 sum omega (x - x_hat)^2`` with ``c`` held
fixed (:func:`energy_update`); :func:`explicit_update` computes it without autograd.

Every function here is pure: tensors in, ``dW`` out. Learning rates, scaling and the state a rule
keeps between steps live in :mod:`liouna_snn.rules.rule`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .geometry import ConvGeometry, as_conv, conv_transpose, coverage, crop, pad

INHIBITIONS = ("population", "column", "self")
# How a convolution (a layer's drive) or a transposed one (the population prediction) is computed:
# ``convolution`` (F.conv2d / F.conv_transpose2d: oneDNN on CPU, cuDNN on GPU), ``matmul`` (one matrix product
# with the gathered patches, convolve_patches / project_patches) or ``auto``: see use_matmul.
CONV_ALGORITHMS = ("auto", "convolution", "matmul")


# ``auto`` projects a code top-down by the matrix product only from this many units up: below it oneDNN's
# transposed convolution is as fast or faster inside the learning step (the 3-layer net's 96 and 384 units).
PROJECTION_PRODUCT_UNITS = 1024


def check_conv_algorithm(algorithm: str) -> str:
    """``algorithm`` if it is one of :data:`CONV_ALGORITHMS`, else a ``ValueError`` naming the allowed ones."""
    if algorithm not in CONV_ALGORITHMS:
        raise ValueError(f"unknown conv_algorithm {algorithm!r}; allowed: {', '.join(CONV_ALGORITHMS)}")
    return algorithm


def use_matmul(algorithm: str, device: torch.device | str, projected_units: int | None = None) -> bool:
    """Whether ``algorithm`` (one of :data:`CONV_ALGORITHMS`) computes a convolution as a matrix product on
    ``device``: ``matmul`` always; ``convolution`` never; ``auto`` on CPU only, where at the small batches of
    local learning one product over the gathered patches runs faster than oneDNN's convolution (cuDNN's
    elsewhere). For a transposed convolution of a code of ``projected_units`` units, ``auto`` takes the product
    from :data:`PROJECTION_PRODUCT_UNITS` units up."""
    if check_conv_algorithm(algorithm) != "auto":
        return algorithm == "matmul"
    large = projected_units is None or projected_units >= PROJECTION_PRODUCT_UNITS
    return large and torch.device(device).type == "cpu"


def patch_rows(t: torch.Tensor, kernel_hw: tuple[int, int], stride: int, *, kernel_order: bool = True) -> torch.Tensor:
    """The patches of a padded ``t (B, C, Hp, Wp)`` as rows ``(B*P, D)``, ``P`` output positions, ``D = C*k*k``.

    Rows are in :func:`unit_rows`' order (sample-major, then positions row by row). Within a row the elements
    are in the weight's ``(C, kh, kw)`` order, or with ``kernel_order=False`` in ``(kh, kw, C)`` order: that
    layout is one copy of a channels-last view (no ``unfold`` then transpose), about 2x faster on CPU; turn a
    result computed in it back with :func:`from_channels_last_kernel`. For a 1x1 kernel at stride 1 over a
    channels-last ``t`` it may be a view of ``t``: do not write to it.
    """
    k_h, k_w = kernel_hw
    if kernel_order:
        patches = F.unfold(t, kernel_hw, stride=stride)                  # (B, C*k*k, P)
        return patches.transpose(1, 2).reshape(-1, patches.shape[1])
    b, c, hp, wp = t.shape
    h_out, w_out = (hp - k_h) // stride + 1, (wp - k_w) // stride + 1
    if h_out < 1 or w_out < 1:
        raise ValueError(f"patch_rows: a {k_h}x{k_w} kernel does not fit a {hp}x{wp} input")
    t_cl = t.permute(0, 2, 3, 1).contiguous()                            # (B, Hp, Wp, C)
    s_b, s_h, s_w, s_c = t_cl.stride()
    windows = t_cl.as_strided((b, h_out, w_out, k_h, k_w, c), (s_b, s_h * stride, s_w * stride, s_h, s_w, s_c))
    return windows.reshape(b * h_out * w_out, k_h * k_w * c)


def from_channels_last_kernel(rows: torch.Tensor, weight_shape: torch.Size, dtype: torch.dtype) -> torch.Tensor:
    """``(K, kh*kw*C)`` in ``(kh, kw, C)`` order (see :func:`patch_rows`) -> ``weight_shape`` ``(K, C, kh, kw)`` in
    ``dtype``, channels-last in memory like the plastic layers' weights (no transposing copy)."""
    k, c, k_h, k_w = weight_shape
    return rows.reshape(k, k_h, k_w, c).permute(0, 3, 1, 2).to(dtype)


def channels_last_rows(weight: torch.Tensor) -> torch.Tensor:
    """A conv weight ``(K, C, kh, kw)`` as ``(K, kh*kw*C)`` rows in :func:`patch_rows`' ``(kh, kw, C)`` order: a
    view of a channels-last weight (the plastic layers'), a copy otherwise."""
    return weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1)


def convolve_patches(x_padded: torch.Tensor, weight: torch.Tensor, stride: int,
                     compute_dtype: torch.dtype | None = None) -> torch.Tensor:
    """The convolution ``W * x`` of an already padded ``x_padded (B, C, Hp, Wp)`` with ``weight (K, C, k, k)`` as
    one matrix product, ``patches (B*P, k*k*C) @ W_rows^T``, in ``compute_dtype`` -> ``(B, K, Ho, Wo)`` in
    ``x_padded``'s dtype, channels-last in memory (as a channels-last convolution's output).

    Equal to ``F.conv2d(x_padded, weight, stride=stride)`` to float rounding. At small batches on CPU it runs
    faster than oneDNN's convolution of the same size (one large product over the gathered patches; see
    :class:`liouna_snn.layers.PlasticConv2d`'s ``conv_algorithm``).
    """
    cd = compute_dtype or x_padded.dtype
    k_h, k_w = weight.shape[-2:]
    patches = patch_rows(x_padded.to(cd), (k_h, k_w), stride, kernel_order=False)     # (B*P, k*k*C)
    b, _, hp, wp = x_padded.shape
    h_out, w_out = (hp - k_h) // stride + 1, (wp - k_w) // stride + 1
    u_rows = patches @ channels_last_rows(weight).to(cd).t()                         # (B*P, K)
    return u_rows.view(b, h_out, w_out, -1).permute(0, 3, 1, 2).to(x_padded.dtype)


def correlate(h: torch.Tensor, pre: torch.Tensor, weight_shape: torch.Size, stride: int,
              compute_dtype: torch.dtype | None = None) -> torch.Tensor:
    """``corr(h, pre)``: ``sum_{b, positions} h_k(b, p) * patch_p(pre_b)`` for every unit ``k``.

    ``h (B, K, Ho, Wo)``, ``pre (B, C, Hp, Wp)`` on the padded grid -> ``(K, C, k, k)`` in ``pre``'s
    dtype; the correlation itself runs in ``compute_dtype`` (e.g. bfloat16) when given.

    Computed as one matrix product ``h (K, B*P) @ patches (B*P, k*k*C)`` over the ``P = Ho*Wo``
    positions (the same sum as a convolution's weight gradient, faster on CPU: one large contraction
    instead of a per-sample reduction), with the patches gathered from a channels-last copy of ``pre``.
    """
    cd = compute_dtype or pre.dtype
    k_h, k_w = weight_shape[-2:]
    patches = patch_rows(pre.to(cd), (k_h, k_w), stride, kernel_order=False)    # (B*P, k*k*C)
    positions = patches.shape[0] // pre.shape[0]
    if positions != h.shape[-2] * h.shape[-1]:
        raise ValueError(f"correlate: {h.shape[-2]}x{h.shape[-1]} output positions do not match the "
                         f"{positions} patches of a {tuple(pre.shape)} input (kernel {k_h}x{k_w}, stride {stride})")
    return from_channels_last_kernel(unit_columns(h, cd) @ patches, weight_shape, pre.dtype)


def unit_rows(c: torch.Tensor) -> torch.Tensor:
    """A code ``c (B, K, Ho, Wo)`` as rows ``(B*P, K)``, in :func:`patch_rows`' order."""
    return c.flatten(2).transpose(1, 2).reshape(-1, c.shape[1])


def unit_columns(h: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A factor ``h (B, K, Ho, Wo)`` as a contiguous ``(K, B*P)`` in ``dtype``: :func:`unit_rows` transposed, as
    the left operand of a correlation. Copied, not a transposed view: oneDNN's bf16 product runs about 1.5x faster
    from a row-major left operand (at the 3-layer net's sizes on CPU), more than the copy costs."""
    return h.to(dtype).transpose(0, 1).contiguous().view(h.shape[1], -1)


def column_update(x_padded: torch.Tensor, c: torch.Tensor, h: torch.Tensor, weight: torch.Tensor, stride: int,
                  omega_padded: torch.Tensor | None = None,
                  compute_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Column inhibition: ``dW = sum_p h_p (omega_p (x_p - W^T c_p))^T`` over every patch ``p``.

    ``x_padded (B, C, Hp, Wp)``, ``c, h (B, K, Ho, Wo)``, ``weight (K, C, k, k)``, ``omega_padded``
    broadcastable to ``x_padded`` (``None``: every element weighs 1) -> ``(K, C, k, k)``.
    Without a mask it is ``corr(h, x) - (H^T C) W``: one ``K x K`` matrix of unit co-activity.
    """
    cd = compute_dtype or x_padded.dtype
    k_hw = tuple(weight.shape[-2:])
    if omega_padded is None:
        hebb = correlate(h, x_padded, weight.shape, stride, compute_dtype)
        coactivity = (unit_columns(h, cd) @ unit_rows(c).to(cd)).to(x_padded.dtype)   # (K, K)
        return hebb - from_channels_last_kernel(coactivity @ channels_last_rows(weight), weight.shape, hebb.dtype)
    # rows in the (kh, kw, C) order of a channels-last gather (see patch_rows), the weights' rows to match
    x_rows = patch_rows(x_padded, k_hw, stride, kernel_order=False)
    omega_rows = patch_rows(omega_padded.expand_as(x_padded).to(x_padded.dtype), k_hw, stride, kernel_order=False)
    w_rows = channels_last_rows(weight)
    x_hat = (unit_rows(c).to(cd) @ w_rows.to(cd)).to(x_padded.dtype)      # (B*P, D)
    e_rows = omega_rows * (x_rows - x_hat)
    return from_channels_last_kernel(unit_columns(h, cd) @ e_rows.to(cd), weight.shape, x_padded.dtype)


def predict_input(c: torch.Tensor, weight: torch.Tensor, input_hw: tuple[int, int], geometry: ConvGeometry,
                  kappa: torch.Tensor | None = None, compute_dtype: torch.dtype | None = None,
                  algorithm: str = "auto") -> torch.Tensor:
    """Top-down prediction ``x_hat = conv_transpose(c, W) / kappa`` on the unpadded input grid.

    ``c (B, K, Ho, Wo)``, ``weight (K, C, k, k)`` -> ``(B, C, H, W)``. The prediction of padded
    positions is dropped. ``algorithm``: see :func:`use_matmul` (the same values either way, to float rounding).
    """
    if kappa is None:
        kappa = coverage(c.shape[-2:], weight.shape[-2:], input_hw, geometry, device=c.device, dtype=c.dtype)
    padded_hw = (input_hw[0] + 2 * geometry.padding, input_hw[1] + 2 * geometry.padding)
    cd = compute_dtype or c.dtype
    if use_matmul(algorithm, c.device, projected_units=c.shape[1]):
        projected = project_patches(c, weight, padded_hw, geometry.stride, cd)
    else:
        projected = conv_transpose(c.to(cd), weight.to(cd), padded_hw, geometry.stride).to(c.dtype)
    return crop(projected, geometry) / kappa


def project_patches(c: torch.Tensor, weight: torch.Tensor, padded_hw: tuple[int, int], stride: int,
                    compute_dtype: torch.dtype | None = None) -> torch.Tensor:
    """:func:`~liouna_snn.rules.geometry.conv_transpose` as one matrix product: every position's projected patch
    ``W^T c_p`` (rows ``(B*P, k*k*C)``, in ``compute_dtype``), then each of the ``k*k`` kernel taps added at its
    place on the padded grid (in ``c``'s dtype, so the sum is not rounded to ``compute_dtype``).

    ``c (B, K, Ho, Wo)``, ``weight (K, C, k, k)`` -> ``(B, C, Hp, Wp)`` (``padded_hw``), channels-last in memory.
    """
    cd = compute_dtype or c.dtype
    b, _, h_out, w_out = c.shape
    channels, k_h, k_w = weight.shape[1:]
    rows = unit_rows(c.to(cd)) @ channels_last_rows(weight).to(cd)                  # (B*P, k*k*C)
    taps = rows.view(b, h_out, w_out, k_h, k_w, channels).to(c.dtype)
    span_h, span_w = (h_out - 1) * stride + 1, (w_out - 1) * stride + 1
    hp, wp = padded_hw
    out = None
    for i in range(k_h):
        for j in range(k_w):
            tap = taps[:, :, :, i, j]                                                   # (B, Ho, Wo, C)
            if stride > 1:  # the positions' contributions sit ``stride`` apart
                spread = tap.new_zeros(b, span_h, span_w, channels)
                spread[:, ::stride, ::stride] = tap
                tap = spread
            # the sum of shifted, zero-padded taps compiles into one pass (an in-place slice add does not)
            placed = F.pad(tap, (0, 0, j, wp - j - span_w, i, hp - i - span_h))
            out = placed if out is None else out + placed
    return out.permute(0, 3, 1, 2)


def position_weights(visible: torch.Tensor | None, lambda_v: float) -> torch.Tensor | float:
    """``omega = (1 - m) + lambda_v * m``: hidden elements count 1, visible ones ``lambda_v``."""
    if visible is None:
        return 1.0
    return (1.0 - visible) + lambda_v * visible


def explicit_update(
    x: torch.Tensor,
    c: torch.Tensor,
    h: torch.Tensor,
    weight: torch.Tensor,
    geometry: ConvGeometry,
    *,
    visible: torch.Tensor | None = None,
    lambda_v: float = 1.0,
    inhibition: str = "population",
    compute_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """``dW`` of the Liouna family (before learning rate and scaling), with batched tensor ops.

    Args:
        x: the layer's full (unmasked) input, ``(B, C, H, W)`` or ``(B, D)`` for a linear layer.
        c: the code ``(B, K, Ho, Wo)`` (or ``(B, K)``) used to predict the input.
        h: the Hebbian factor, same shape as ``c``.
        weight: ``(K, C, k, k)`` or ``(K, D)``.
        geometry: stride and padding of the forward convolution (``LINEAR`` for a linear layer).
        visible: mask broadcastable to ``x``; 1 = visible, 0 = hidden. ``None`` = no mask.
        lambda_v: weight of visible elements in the error, in ``[0, 1]``.
        inhibition: ``"population"`` (prediction by every unit covering an element), ``"column"``
            (by the units at the same position, patch by patch) or ``"self"`` (each unit's own term).
        compute_dtype: dtype of the convolutions (e.g. ``torch.bfloat16``); element-wise work and the
            result stay in ``x``'s dtype.

    Returns:
        ``dW`` with the shape of ``weight``.
    """
    weight_shape = weight.shape
    x, weight = as_conv(x, weight)
    c, h = c.reshape(*c.shape[:2], *c.shape[2:] or (1, 1)), h.reshape(*h.shape[:2], *h.shape[2:] or (1, 1))
    if visible is not None:
        visible = visible.reshape(*visible.shape, *(1,) * (4 - visible.dim())) if visible.dim() < 4 else visible
    omega = position_weights(visible, lambda_v)
    if inhibition == "population":
        kappa = coverage(c.shape[-2:], weight.shape[-2:], x.shape[-2:], geometry, device=x.device, dtype=x.dtype)
        x_hat = predict_input(c, weight, x.shape[-2:], geometry, kappa, compute_dtype)
        e = omega * (x - x_hat) / kappa
        p = geometry.padding
        e_padded = F.pad(e, (p, p, p, p)) if p else e  # padded elements carry no error
        dw = correlate(h, e_padded, weight.shape, geometry.stride, compute_dtype)
    elif inhibition == "column":
        omega_p = None if visible is None else pad(omega.expand_as(x), geometry)
        dw = column_update(pad(x, geometry), c, h, weight, geometry.stride, omega_p, compute_dtype)
    elif inhibition == "self":
        # dW_k = sum over patches of h_k * omega * (x - c_k w_k), on the padded patches the unit sees.
        x_p = pad(x, geometry)
        if visible is None:
            hebb = correlate(h, x_p, weight.shape, geometry.stride, compute_dtype)
            # in place, without a weight-sized temporary (hebb is this call's own)
            dw = hebb.addcmul_((h * c).sum(dim=(0, 2, 3)).view(-1, 1, 1, 1), weight, value=-1.0)
        else:
            omega_p = pad(omega.expand_as(x), geometry)
            hebb = correlate(h, omega_p * x_p, weight.shape, geometry.stride, compute_dtype)
            dw = hebb - correlate(h * c, omega_p, weight.shape, geometry.stride, compute_dtype) * weight
    else:
        raise ValueError(f"unknown inhibition {inhibition!r}; allowed: {', '.join(INHIBITIONS)}")
    return dw.reshape(weight_shape)


def energy(
    x: torch.Tensor, c: torch.Tensor, weight: torch.Tensor, geometry: ConvGeometry, *,
    visible: torch.Tensor | None = None, lambda_v: float = 1.0, inhibition: str = "population",
) -> torch.Tensor:
    """The prediction energy (a scalar) of code ``c`` for input ``x``.

    ``population``: ``E = 1/2 sum omega (x - conv_transpose(c, W) / kappa)^2`` over the real input
    elements. ``column``: ``E = 1/2 sum_p sum omega_p (x_p - W^T c_p)^2`` over every patch ``x_p``
    a unit sees (padding included), each predicted by the units at its own position.
    """
    if inhibition not in ("population", "column"):
        raise ValueError(f"the energy exists for inhibition 'population' or 'column', not {inhibition!r}")
    x, weight4 = as_conv(x, weight)
    c = c.reshape(*c.shape[:2], *c.shape[2:] or (1, 1))
    if visible is not None and visible.dim() < 4:
        visible = visible.reshape(*visible.shape, *(1,) * (4 - visible.dim()))
    omega = position_weights(visible, lambda_v)
    if inhibition == "column":
        k_hw = tuple(weight4.shape[-2:])
        x_rows = patch_rows(pad(x, geometry), k_hw, geometry.stride)
        omega_rows = 1.0 if visible is None else patch_rows(pad(omega.expand_as(x), geometry), k_hw, geometry.stride)
        x_hat = unit_rows(c) @ weight4.reshape(weight4.shape[0], -1)
        return 0.5 * (omega_rows * (x_rows - x_hat).pow(2)).sum()
    x_hat = predict_input(c, weight4, x.shape[-2:], geometry)
    return 0.5 * (omega * (x - x_hat).pow(2)).sum()


def energy_update(
    x: torch.Tensor, c: torch.Tensor, weight: torch.Tensor, geometry: ConvGeometry, *,
    visible: torch.Tensor | None = None, lambda_v: float = 1.0, inhibition: str = "population",
) -> torch.Tensor:
    """``dW = -dE/dW`` with the code ``c`` held fixed (the ``h = c`` member; population or column inhibition).

    Autograd is only a way to compute a local correlation here: the graph spans this one layer.
    """
    w = weight.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        e = energy(x.detach(), c.detach(), w, geometry, visible=visible, lambda_v=lambda_v, inhibition=inhibition)
        (grad,) = torch.autograd.grad(e, w)
    return -grad

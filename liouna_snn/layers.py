"""Plastic layers: synapses + input normalisation + neuron + pooling + a local rule.

``forward(x)`` computes the layer's output without learning; ``learn(x)`` computes it and applies
the rule's update, which uses only this layer's input, drive, activity and weights. Weights are
float32 master copies; the convolutions can run in bfloat16 (``compute_dtype``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .rules import ConvGeometry, LocalRule, RuleConfig
from .rules.geometry import LINEAR, PADDING_MODES, output_size, pad


def check_input(x: torch.Tensor, rank: int, channels: int, where: str) -> None:
    """Raise a ``ValueError`` naming the problem if ``x`` is not a finite ``rank``-d tensor with ``channels`` on dim 1."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{where}: expected a torch.Tensor, got {type(x).__name__}")
    if x.dim() != rank:
        layout = "(batch, channels, height, width)" if rank == 4 else "(batch, features)"
        raise ValueError(f"{where}: expected a {rank}-d input {layout}, got shape {tuple(x.shape)}")
    if x.shape[1] != channels:
        raise ValueError(f"{where}: expected {channels} input channels/features on dim 1, got {x.shape[1]} "
                         f"(shape {tuple(x.shape)})")
    if not torch.isfinite(x).all():
        raise ValueError(f"{where}: input contains NaN or Inf values")


NORMS = ("batch", "running", "none")


def _norm_kind(norm: bool | str) -> str:
    kind = {True: "batch", False: "none"}.get(norm, norm) if isinstance(norm, bool) else norm
    if kind not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; allowed: {', '.join(NORMS)} (or true / false)")
    return kind


class PlasticLayer(nn.Module):
    """Common machinery of the plastic layers; see :class:`PlasticConv2d` and :class:`PlasticLinear`."""

    weight: torch.Tensor

    def __init__(self, weight_shape: tuple[int, ...], geometry: ConvGeometry, norm: nn.Module,
                 activation: nn.Module, pool: nn.Module | None, rule: RuleConfig,
                 compute_dtype: torch.dtype | None, generator: torch.Generator | None):
        super().__init__()
        self.rule = LocalRule(rule)
        self.geometry = geometry
        self.norm = norm
        self.norm_kind = "none" if isinstance(norm, nn.Identity) else "batch"
        self.activation = activation
        self.pool = pool if pool is not None else nn.Identity()
        self.compute_dtype = compute_dtype
        self.weight = nn.Parameter(self.rule.init_weight(weight_shape, generator), requires_grad=False)
        # How often each unit had the largest drive at a position while learning (competition diagnostics).
        self.register_buffer("win_counts", torch.zeros(weight_shape[0], dtype=torch.float64))

    @property
    def out_channels(self) -> int:
        return self.weight.shape[0]

    def _drive(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _check(self, x: torch.Tensor) -> None:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Output of the layer (after pooling), no learning. Batch-norm uses batch statistics in
        ``train()`` mode and running statistics in ``eval()`` mode."""
        self._check(x)
        with torch.no_grad():
            return self.pool(self.activation(self._drive(self.norm(x))))

    @torch.no_grad()
    def learn(self, x: torch.Tensor, progress: float = 0.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """Forward pass plus one local update of ``weight``; returns the (detached) output.

        Args:
            x: the layer's input (detached output of the layer below, or pixels).
            progress: fraction of the run done, in [0, 1] (for scheduled learning rates).
            generator: CPU generator for the input mask (deterministic runs).
        """
        self._check(x)
        x_n = self._normalise_for_learning(x)
        u = self._drive(x_n)
        y = self.activation(u)
        if self.rule.learns:
            visible = self.rule.sample_visible(x_n, generator)
            if visible is None:
                u_v, y_v = u, y
            else:
                u_v = self._drive(x_n * visible)
                y_v = self.activation(u_v)
            dw = self.rule.delta(x_n, u_v, y_v, self.weight, self.geometry, visible, self.compute_dtype)
            self.rule.apply(self.weight, dw, progress)
            winners = u_v.argmax(dim=1).flatten()
            self.win_counts += torch.bincount(winners, minlength=self.out_channels).to(self.win_counts.dtype)
        return self.pool(y)

    def _normalise_for_learning(self, x: torch.Tensor) -> torch.Tensor:
        """Batch statistics (``batch``), or running statistics updated with this batch (``running``)."""
        if self.norm_kind != "running" or not self.training:
            return self.norm(x)
        self.norm(x)  # updates the running statistics
        self.norm.eval()
        try:
            return self.norm(x)
        finally:
            self.norm.train()

    def diagnostics(self, per_unit: bool = False) -> dict:
        """Weight-norm spread, win frequencies and dead units (units that never won while learning).

        With ``per_unit``, also every unit's weight norm and win frequency (lists of length K).
        """
        norms = self.weight.detach().flatten(1).norm(dim=1).double()
        wins = self.win_counts
        total = float(wins.sum())
        freq = (wins / total) if total > 0 else wins
        return {
            "units": self.out_channels,
            "weight_norm_mean": float(norms.mean()),
            "weight_norm_std": float(norms.std()) if norms.numel() > 1 else 0.0,
            "weight_norm_min": float(norms.min()),
            "weight_norm_max": float(norms.max()),
            "win_frequency_max": float(freq.max()) if total > 0 else None,
            "win_frequency_entropy_bits": float(-(freq[freq > 0] * freq[freq > 0].log2()).sum()) if total > 0 else None,
            "dead_units": int((wins == 0).sum()) if total > 0 else None,
        } | ({"unit_weight_norms": [round(float(v), 4) for v in norms],
              "unit_win_frequencies": [round(float(v), 6) for v in freq]} if per_unit else {})


class PlasticConv2d(PlasticLayer):
    """A plastic convolution: affine-free batch-norm -> padded conv -> activation -> pooling.

    Input ``(B, in_channels, H, W)``; output ``(B, out_channels, H', W')`` after pooling.
    ``norm``: ``batch`` (or true; batch statistics while learning), ``running`` (running statistics
    while learning too) or ``none`` (or false). Outside learning, ``eval()`` uses running statistics.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1, padding: int = 0,
                 padding_mode: str = "zeros", norm: bool | str = True, activation: nn.Module | None = None,
                 pool: nn.Module | None = None, rule: RuleConfig | None = None,
                 compute_dtype: torch.dtype | None = None, generator: torch.Generator | None = None):
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"unknown padding_mode {padding_mode!r}; allowed: {', '.join(PADDING_MODES)}")
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                            ("kernel_size", kernel_size), ("stride", stride)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(padding, int) or padding < 0:
            raise ValueError(f"padding must be a non-negative integer, got {padding!r}")
        kind = _norm_kind(norm)
        super().__init__((out_channels, in_channels, kernel_size, kernel_size), ConvGeometry(stride, padding, padding_mode),
                         nn.BatchNorm2d(in_channels, affine=False) if kind != "none" else nn.Identity(),
                         activation or nn.Identity(), pool, rule or RuleConfig(), compute_dtype, generator)
        self.norm_kind = kind
        self.in_channels = in_channels

    def _check(self, x):
        check_input(x, 4, self.in_channels, self.__class__.__name__)
        k = self.weight.shape[-1]
        output_size(x.shape[2], k, self.geometry), output_size(x.shape[3], k, self.geometry)

    def _drive(self, x):
        cd = self.compute_dtype or x.dtype
        return F.conv2d(pad(x, self.geometry).to(cd), self.weight.to(cd), stride=self.geometry.stride).to(x.dtype)

    def output_shape(self, input_hw: tuple[int, int]) -> tuple[int, int, int]:
        """``(C, H, W)`` of the output (after pooling) for an input of spatial size ``input_hw``."""
        k = self.weight.shape[-1]
        h, w = (output_size(s, k, self.geometry) for s in input_hw)
        with torch.no_grad():
            out = self.pool(torch.zeros(1, self.out_channels, h, w))
        return tuple(out.shape[1:])


class PlasticLinear(PlasticLayer):
    """A plastic fully connected layer: affine-free batch-norm -> linear -> activation. ``(B, D) -> (B, K)``."""

    def __init__(self, in_features: int, out_features: int, *, norm: bool | str = True, activation: nn.Module | None = None,
                 rule: RuleConfig | None = None, compute_dtype: torch.dtype | None = None,
                 generator: torch.Generator | None = None):
        kind = _norm_kind(norm)
        super().__init__((out_features, in_features), LINEAR,
                         nn.BatchNorm1d(in_features, affine=False) if kind != "none" else nn.Identity(),
                         activation or nn.Identity(), None, rule or RuleConfig(), compute_dtype, generator)
        self.norm_kind = kind
        self.in_features = in_features

    def _check(self, x):
        check_input(x, 2, self.in_features, self.__class__.__name__)

    def _drive(self, x):
        cd = self.compute_dtype or x.dtype
        return F.linear(x.to(cd), self.weight.to(cd)).to(x.dtype)

    def output_shape(self, input_hw=None) -> tuple[int]:
        return (self.out_channels,)

"""A local rule as an object: options, input masks, and how ``dW`` becomes a weight change.

:class:`RuleConfig` holds every knob of the family (``docs``: the rule document, sections 3 and 5)
in one frozen record; :data:`PRESETS` names its members. :class:`LocalRule` turns a layer's
``(x, u, y, W)`` into ``dW`` with the pure functions of :mod:`liouna_snn.rules.liouna` and applies it
with a learning rate and an update scaling.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from .factors import FACTORS, anti_hebbian, factor, winner_index
from .geometry import ConvGeometry
from .liouna import INHIBITIONS, channels_last_rows, energy_update, explicit_update

LR_SCHEDULES = ("norm-adaptive", "constant", "cosine")
SCALINGS = ("global-maxabs", "unit-maxabs", "rms", "none")
FORMS = ("explicit", "energy")


def unit_rows_in_memory(t: torch.Tensor) -> torch.Tensor:
    """``t (K, ...)`` as ``(K, fan_in)`` rows without a copy where its layout allows: a channels-last conv weight
    ``(K, C, kh, kw)`` gives rows in its memory order ``(kh, kw, C)``. For per-unit reductions that do not depend
    on the order of a unit's elements (norms, maxima)."""
    if t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last):
        return channels_last_rows(t)
    return t.reshape(t.shape[0], -1)


@dataclass(frozen=True)
class RuleConfig:
    """Options of a local rule of the Liouna family. Defaults are the plain Liouna member.

    Attributes:
        name: the rule's name in results (``liouna``, ``softhebb``, ``oja``, ``competitive``, ``random``).
        code: ``c = g(u)``, the latent that predicts the input; one of :data:`FACTORS`
            (``output`` = the layer's own activation ``y``).
        hebb: ``h = f(u)``, the postsynaptic factor; a factor name or ``"code"`` (``h = c``).
        anti_hebbian: losers of the competition at each position get ``-h`` (SoftHebb).
        inverse_temperature: ``t`` of the softmax factors.
        inhibition: ``population`` (prediction by every unit covering an input element), ``column``
            (by the units at the same position, patch by patch) or ``self``; the energy form applies to
            the first two.
        mask_ratio: probability ``rho`` that a mask patch is hidden; 0 turns masking off.
        mask_patch: side of a square mask patch, in input pixels of this layer.
        lambda_v: weight of visible elements in the error, in [0, 1] (1: all count, 0: hidden only).
        form: ``explicit`` (batched correlations) or ``energy`` (autograd of the one-layer energy;
            only for ``h = c`` with population inhibition).
        lr: base learning rate ``eta``.
        lr_schedule: ``norm-adaptive`` (per unit ``lr * |‖w_k‖ - 1| ** norm_power``, SoftHebb's),
            ``constant`` or ``cosine`` (decays to 0 over the run).
        norm_power: exponent of the norm-adaptive learning rate.
        scaling: ``global-maxabs`` (``dW / max|dW|``), ``unit-maxabs`` (per unit), ``rms`` or ``none``.
        init_radius: initial weights are ``N(0, (init_radius / sqrt(fan_in))^2)``: unit norms ~ init_radius.
    """

    name: str = "liouna"
    code: str = "output"
    hebb: str = "code"
    anti_hebbian: bool = False
    inverse_temperature: float = 1.0
    inhibition: str = "population"
    mask_ratio: float = 0.0
    mask_patch: int = 1
    lambda_v: float = 1.0
    form: str = "explicit"
    lr: float = 0.01
    lr_schedule: str = "norm-adaptive"
    norm_power: float = 0.5
    scaling: str = "global-maxabs"
    init_radius: float = 25.0

    def __post_init__(self):
        def allowed(field, value, options):
            if value not in options:
                raise ValueError(f"rule option {field}={value!r} is not allowed; choose one of: {', '.join(options)}")

        allowed("code", self.code, FACTORS)
        allowed("hebb", self.hebb, ("code",) + FACTORS)
        allowed("inhibition", self.inhibition, INHIBITIONS)
        allowed("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        allowed("scaling", self.scaling, SCALINGS)
        allowed("form", self.form, FORMS)
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ValueError(f"rule option mask_ratio={self.mask_ratio} must lie in [0, 1)")
        if not 0.0 <= self.lambda_v <= 1.0:
            raise ValueError(f"rule option lambda_v={self.lambda_v} must lie in [0, 1]")
        if self.mask_patch < 1:
            raise ValueError(f"rule option mask_patch={self.mask_patch} must be a positive integer")
        if self.lr < 0 or not math.isfinite(self.lr):
            raise ValueError(f"rule option lr={self.lr} must be a finite number >= 0")
        if self.init_radius <= 0:
            raise ValueError(f"rule option init_radius={self.init_radius} must be > 0")
        if self.form == "energy" and not (self.hebb == "code" and self.inhibition in ("population", "column")):
            raise ValueError("form='energy' needs hebb='code' and inhibition='population' or 'column' "
                             "(the energy exists only then)")


PRESETS: dict[str, dict] = {
    # h = c = y, population prediction (the energy form applies exactly).
    "liouna": dict(name="liouna", code="output", hebb="code", inhibition="population"),
    # Journé et al. 2023: softmax competition, anti-Hebbian losers, self inhibition, max-abs scaling.
    "softhebb": dict(name="softhebb", code="drive", hebb="softmax", anti_hebbian=True, inhibition="self",
                     lr_schedule="norm-adaptive", scaling="global-maxabs"),
    # Oja's subspace rule: h = c = u, population, no mask (linear layers: top principal subspace).
    "oja": dict(name="oja", code="drive", hebb="code", inhibition="population", lr_schedule="constant",
                scaling="none", init_radius=1.0),
    # Hard competitive learning: one-hot winner, self inhibition (k-means-like).
    "competitive": dict(name="competitive", code="winner", hebb="code", inhibition="self"),
    # Random frozen weights: no update ever.
    "random": dict(name="random", lr=0.0, lr_schedule="constant", scaling="none"),
}


def rule_config(preset: str, **overrides) -> RuleConfig:
    """The config of a named member, with ``overrides`` applied. Unknown names or keys raise."""
    if preset not in PRESETS:
        raise ValueError(f"unknown rule {preset!r}; allowed: {', '.join(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(RuleConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown rule option(s) {unknown}; allowed: {', '.join(sorted(fields))}")
    return RuleConfig(**{**PRESETS[preset], **overrides})


class LocalRule:
    """Computes and applies the weight update of one layer from that layer's own signals only."""

    def __init__(self, config: RuleConfig):
        self.config = config

    @property
    def learns(self) -> bool:
        return self.config.lr > 0 and self.config.name != "random"

    @property
    def reads_activation(self) -> bool:
        """Whether the update reads the layer's activation ``y`` (a factor ``output``), not only its drive."""
        return "output" in (self.config.code, self.config.hebb)

    def sample_visible(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """A visibility mask for ``x``: ``(B, 1, H, W)`` for a conv input (whole ``mask_patch`` squares
        hidden with probability ``mask_ratio``), ``(B, D)`` for a linear input; ``None`` without masking."""
        rho = self.config.mask_ratio
        if rho == 0.0:
            return None
        if x.dim() == 2:
            shape = x.shape
        else:
            p = self.config.mask_patch
            shape = (x.shape[0], 1, -(-x.shape[2] // p), -(-x.shape[3] // p))
        where = "cpu" if generator is None else generator.device   # a CPU generator keeps runs device-independent
        keep = (torch.rand(shape, generator=generator, device=where) >= rho).to(device=x.device, dtype=x.dtype)
        if x.dim() == 2:
            return keep
        p = self.config.mask_patch
        keep = keep.repeat_interleave(p, dim=2).repeat_interleave(p, dim=3)
        return keep[..., : x.shape[2], : x.shape[3]]

    @property
    def reads_winners(self) -> bool:
        """Whether the update needs the winning unit at each position (winner factors, anti-Hebbian losers)."""
        cfg = self.config
        return cfg.anti_hebbian or any(f.startswith("winner") for f in (cfg.code, cfg.hebb))

    def factors(self, u: torch.Tensor, y: torch.Tensor,
                winners: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The code ``c`` and the Hebbian factor ``h`` of drive ``u`` and activation ``y``.

        ``winners``: :func:`~liouna_snn.rules.factors.winner_index` of ``u`` when the caller has it (the layer
        counts wins with it); computed here once otherwise, if the rule needs it.
        """
        cfg = self.config
        if winners is None and self.reads_winners:
            winners = winner_index(u)
        c = factor(cfg.code, u, y, cfg.inverse_temperature, winners)
        h = c if cfg.hebb == "code" else factor(cfg.hebb, u, y, cfg.inverse_temperature, winners)
        if cfg.anti_hebbian:
            h = anti_hebbian(h, u, winners)
        return c, h

    def delta(self, x: torch.Tensor, u: torch.Tensor, y: torch.Tensor, weight: torch.Tensor,
              geometry: ConvGeometry, visible: torch.Tensor | None = None,
              compute_dtype: torch.dtype | None = None, winners: torch.Tensor | None = None) -> torch.Tensor:
        """Unscaled ``dW`` for input ``x`` (full, unmasked), drive ``u`` (of the masked input) and activation ``y``.

        ``compute_dtype`` (e.g. bfloat16) is used for the prediction and correlation convolutions;
        ``winners`` as in :meth:`factors`.
        """
        c, h = self.factors(u, y, winners)
        if self.config.form == "energy":
            return energy_update(x, c, weight, geometry, visible=visible, lambda_v=self.config.lambda_v,
                                 inhibition=self.config.inhibition)
        return explicit_update(x, c, h, weight, geometry, visible=visible, lambda_v=self.config.lambda_v,
                               inhibition=self.config.inhibition, compute_dtype=compute_dtype)

    def step_sizes(self, weight: torch.Tensor, progress: float | torch.Tensor) -> torch.Tensor:
        """Per-unit learning rate ``(K, 1, ...)`` at ``progress`` in [0, 1] of the run (a number, or a 0-d tensor
        inside a compiled step, where a number would be compiled in as a constant)."""
        cfg = self.config
        shape = (-1,) + (1,) * (weight.dim() - 1)
        if cfg.lr_schedule == "norm-adaptive":
            norms = unit_rows_in_memory(weight).norm(dim=1)
            return (cfg.lr * (norms - 1.0).abs().clamp_min(1e-10).pow(cfg.norm_power)).view(shape)
        if isinstance(progress, torch.Tensor):
            lr = (torch.ones_like(progress) if cfg.lr_schedule == "constant" else
                  0.5 * (1.0 + torch.cos(math.pi * progress.clamp(max=1.0)))) * cfg.lr
            return lr.to(weight.dtype).expand(weight.shape[0]).view(shape)
        lr = cfg.lr if cfg.lr_schedule == "constant" else cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
        return torch.full((weight.shape[0],), lr, device=weight.device, dtype=weight.dtype).view(shape)

    def scale_denominator(self, dw: torch.Tensor) -> torch.Tensor | None:
        """What ``dW`` is divided by under the configured scaling (a scalar, ``(K, 1, ...)``, or ``None``)."""
        s = self.config.scaling
        # max |dW| as max(max dW, -min dW): one pass without an |dW| temporary (about 4x faster on CPU)
        if s == "global-maxabs":
            lo, hi = torch.aminmax(unit_rows_in_memory(dw))  # in memory order: 3x faster over channels-last dW
            return torch.maximum(hi, -lo) + 1e-30
        if s == "unit-maxabs":
            lo, hi = torch.aminmax(unit_rows_in_memory(dw), dim=1)
            return (torch.maximum(hi, -lo) + 1e-30).view((-1,) + (1,) * (dw.dim() - 1))
        if s == "rms":
            return unit_rows_in_memory(dw).pow(2).mean().sqrt() + 1e-30
        return None

    def scale(self, dw: torch.Tensor) -> torch.Tensor:
        """``dW`` normalised by the configured scaling."""
        denom = self.scale_denominator(dw)
        return dw if denom is None else dw / denom

    def _update_terms(self, weight: torch.Tensor, dw: torch.Tensor, progress) -> tuple[torch.Tensor, torch.Tensor]:
        """``(finite, factor)``: whether ``dW`` is finite (a 0-d bool tensor) and what multiplies it, ``(K, 1, ...)``."""
        denom = self.scale_denominator(dw)
        check = denom if denom is not None else dw.abs().amax()
        step = self.step_sizes(weight, progress)
        return torch.isfinite(check).all(), step if denom is None else step / denom

    def not_finite_error(self) -> FloatingPointError:
        return FloatingPointError(f"{self.config.name}: the weight update is NaN or Inf; lower the learning rate")

    @torch.no_grad()
    def apply(self, weight: torch.Tensor, dw: torch.Tensor, progress: float = 0.0) -> None:
        """``weight += step_size * scale(dW)`` in place (float32 master weights).

        Raises ``FloatingPointError`` if the update is not finite (the weights are left unchanged).
        """
        dw = dw.to(weight.dtype)
        finite, factor = self._update_terms(weight, dw, progress)
        if not bool(finite):
            raise self.not_finite_error()
        weight.addcmul_(dw, factor)

    @torch.no_grad()
    def apply_if_finite(self, weight: torch.Tensor, dw: torch.Tensor, progress: float | torch.Tensor) -> torch.Tensor:
        """:meth:`apply` without leaving the tensor world: the weights change only if the update is finite, and the
        0-d bool tensor returned says whether they did (the caller raises). In one compiled graph (see
        :meth:`PlasticLayer.learn` under ``compile_step``) the scaling, the step sizes and the update fuse into
        about two passes over the weights instead of one per operation."""
        dw = dw.to(weight.dtype)
        finite, factor = self._update_terms(weight, dw, progress)
        weight.copy_(torch.where(finite, weight + dw * factor, weight))
        return finite

    def init_weight(self, shape: tuple[int, ...], generator: torch.Generator | None = None) -> torch.Tensor:
        """Initial weights ``N(0, (init_radius / sqrt(fan_in))^2)`` (float32, CPU)."""
        fan_in = math.prod(shape[1:])
        return torch.randn(shape, generator=generator) * (self.config.init_radius / math.sqrt(fan_in))

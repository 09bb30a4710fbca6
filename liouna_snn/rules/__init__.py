"""Local learning rules: pure update functions and the :class:`LocalRule` object that applies them."""
from .factors import FACTORS, anti_hebbian, factor, winner_index, winner_mask
from .geometry import LINEAR, PADDING_MODES, ConvGeometry, coverage
from .liouna import INHIBITIONS, correlate, energy, energy_update, explicit_update, predict_input
from .rule import PRESETS, LocalRule, RuleConfig, rule_config
from .softhebb import softhebb_reference_update

__all__ = [
    "FACTORS", "INHIBITIONS", "LINEAR", "PADDING_MODES", "PRESETS", "ConvGeometry", "LocalRule", "RuleConfig",
    "anti_hebbian", "correlate", "coverage", "energy", "energy_update", "explicit_update", "factor",
    "predict_input", "rule_config", "softhebb_reference_update", "winner_index",
    "winner_mask",
]

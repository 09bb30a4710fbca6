"""liouna_snn: layer-local plasticity (Liouna, SoftHebb) for rate-coded and spiking networks."""
from .layers import PlasticConv2d, PlasticLinear
from .network import LocalNetwork, build_network, load_spec
from .rules import LocalRule, RuleConfig, rule_config
from . import precision

__version__ = "0.1.0"
__all__ = ["LocalNetwork", "LocalRule", "PlasticConv2d", "PlasticLinear", "RuleConfig", "build_network",
           "load_spec", "precision", "rule_config"]

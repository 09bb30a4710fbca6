"""Test data and helpers shared by several test files."""
import importlib.util
from pathlib import Path

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"


def load_experiment_script(name: str):
    """The module of the script ``experiments/<name>.py`` (scripts are not a package: loaded from their file)."""
    spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def legacy_config(*args, **options):
    """A :class:`liouna_snn.spiking.SpikingConfig` with the defaults the spiking tests were written against
    (``LEGACY_DEFAULTS``: no inhibition, the drive as current, membranes from rest, the rule on rates) for the options
    not given, so each test isolates the mechanism it names (and a NIR graph's synapses hold the learned weights)."""
    from liouna_snn.spiking import LEGACY_DEFAULTS, SpikingConfig

    return SpikingConfig(*args, **{**LEGACY_DEFAULTS, **options})


# A 3-layer toy spec (reflect-padded conv + max pool, conv + avg pool, linear): small enough for
# end-to-end experiment tests in seconds, with every layer kind the CIFAR network has.
SMALL_SPEC_TOML = (
    'input_channels = 3\ninput_size = 32\n'
    '[[layers]]\nout_channels = 6\nkernel_size = 3\npadding = 1\npadding_mode = "reflect"\n'
    'pool = { type = "max", kernel_size = 4, stride = 4 }\n'
    '[[layers]]\nout_channels = 8\nkernel_size = 3\npadding = 1\npool = { type = "avg", kernel_size = 2 }\n'
    '[[layers]]\ntype = "linear"\nout_channels = 5\n'
)


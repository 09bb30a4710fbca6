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


# A 3-layer toy spec (reflect-padded conv + max pool, conv + avg pool, linear): small enough for
# end-to-end experiment tests in seconds, with every layer kind the CIFAR network has.
SMALL_SPEC_TOML = (
    'input_channels = 3\ninput_size = 32\n'
    '[[layers]]\nout_channels = 6\nkernel_size = 3\npadding = 1\npadding_mode = "reflect"\n'
    'pool = { type = "max", kernel_size = 4, stride = 4 }\n'
    '[[layers]]\nout_channels = 8\nkernel_size = 3\npadding = 1\npool = { type = "avg", kernel_size = 2 }\n'
    '[[layers]]\ntype = "linear"\nout_channels = 5\n'
)


"""Plain export: the exported CNN, loaded without liouna_snn, computes what the network computes."""
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from liouna_snn import build_network, load_spec, rule_config
from liouna_snn.cli import main
from liouna_snn.export import export_plain, load_plain, load_trained_network
from liouna_snn.export.standalone import build_model
from liouna_snn.spiking import SpikingConfig
from liouna_snn.training import TrainConfig, train_unsupervised
from liouna_snn.data import load_dataset

from .test_network import SMALL_SPEC

ROOT = Path(__file__).resolve().parents[1]

# Loads each export with its own load_model.py in a fresh interpreter where importing liouna_snn fails.
CHILD = r"""
import importlib.abc, importlib.util, json, sys

class BlockLiounaSnn(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "liouna_snn":
            raise ImportError(f"blocked import of {name}")
        return None

sys.meta_path.insert(0, BlockLiounaSnn())
import torch

for i, (folder, inputs, outputs) in enumerate(json.loads(sys.argv[1])):
    spec = importlib.util.spec_from_file_location(f"load_model_{i}", f"{folder}/load_model.py")
    loader = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loader)
    model = loader.load_plain(folder)
    assert not model.training
    x = torch.load(inputs)
    torch.save({d: loader.features(model, x, d) for d in range(1, len(model) + 1)} | {"all": model(x)}, outputs)
assert not [n for n in sys.modules if n.split(".")[0] == "liouna_snn"], "liouna_snn was imported"
"""


def trained(spec, steps=2, batch=4, seed=0):
    """A float32 network whose layers learned ``steps`` batches each (non-trivial running statistics), in eval mode."""
    net = build_network(spec, rule_config("softhebb"), seed=seed, compute_dtype=None)
    g = torch.Generator().manual_seed(seed)
    size = spec["input_size"]
    for _ in range(steps):
        h = torch.randn(batch, spec["input_channels"], size, size, generator=g) * 2 + 0.5
        for i in range(len(net)):
            h = net.learn_layer(i, h, 0.0)
    return net.eval()


def test_export_runs_without_liouna_snn_and_matches_the_network(tmp_path):
    cifar = {**load_spec(ROOT / "models" / "cifar10_3layer.toml")}
    jobs, expected = [], []
    for name, spec, steps, batch in (("small", SMALL_SPEC, 3, 4), ("cifar", cifar, 1, 2)):
        net = trained(spec, steps, batch)
        norm = net.layers[0].norm
        assert norm.num_batches_tracked > 0 and not torch.allclose(norm.running_var, torch.ones_like(norm.running_var))
        folder = export_plain(net, tmp_path / name)
        assert sorted(p.name for p in folder.iterdir()) == ["architecture.json", "load_model.py", "model.safetensors"]
        x = torch.randn(3 if name == "small" else 2, 3, spec["input_size"], spec["input_size"])
        torch.save(x, tmp_path / f"{name}_x.pt")
        jobs.append((str(folder), str(tmp_path / f"{name}_x.pt"), str(tmp_path / f"{name}_y.pt")))
        with torch.no_grad():
            expected.append({d: net(x, d) for d in range(1, len(net) + 1)})
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(jobs)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    for (_, _, outputs), want in zip(jobs, expected):
        got = torch.load(outputs)
        assert torch.equal(got["all"], got[len(want)])
        for d, y in want.items():
            assert got[d].shape == y.shape
            # equal up to float32 rounding (relative to the layer's scale): the network's channels-last weights
            # and the export's standard-layout copies reach oneDNN in different layouts, which may round the
            # last bits differently, and the triangle's mean subtraction magnifies that
            scale = max(1.0, float(y.abs().max()))
            assert float((got[d] - y).abs().max()) <= 1e-5 * scale, f"layer {d}"


def test_loader_imports_only_torch_safetensors_and_the_standard_library():
    source = (ROOT / "liouna_snn" / "export" / "standalone.py").read_text()
    roots = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import in standalone.py"
            roots.add(node.module.split(".")[0])
    assert roots <= {"torch", "safetensors", "json", "sys", "collections", "pathlib", "__future__"}, roots


def test_round_trip_keeps_every_tensor_bit_identical(tmp_path):
    net = trained(SMALL_SPEC)
    folder = export_plain(net, tmp_path)
    tensors = load_file(folder / "model.safetensors")
    for i, layer in enumerate(net.layers, start=1):
        synapse = "conv" if layer.weight.dim() == 4 else "linear"
        assert torch.equal(tensors[f"layer{i}.{synapse}.weight"], layer.weight)
        for key in ("running_mean", "running_var", "num_batches_tracked"):
            assert torch.equal(tensors[f"layer{i}.norm.{key}"], getattr(layer.norm, key))
    assert all(t.dtype in (torch.float32, torch.int64) for t in tensors.values())
    architecture = json.loads((folder / "architecture.json").read_text())
    assert architecture["format"] == "liouna-snn-plain" and architecture["version"] == 1
    assert architecture["input"]["shape"] == [3, 12, 12]
    assert [m["type"] for m in architecture["layers"][0]["modules"]] == [
        "batchnorm2d", "pad", "conv2d", "triangle", "maxpool2d"]
    assert architecture["layers"][0]["modules"][1] == {"name": "pad", "type": "pad", "padding": 1, "mode": "reflect"}
    assert [m["type"] for m in architecture["layers"][2]["modules"]] == ["flatten", "batchnorm1d", "linear", "relu"]
    assert [layer["output_shape"] for layer in architecture["layers"]] == [list(s) for s in net.feature_shapes()]
    rebuilt = build_model(architecture)
    assert set(rebuilt.state_dict()) == set(tensors)
    loaded = load_plain(folder)
    for key, t in loaded.state_dict().items():
        assert torch.equal(t, tensors[key]), key


@pytest.mark.parametrize("where, module, layer", [
    ("activation", nn.GELU(), 2),
    ("pool", nn.AdaptiveAvgPool2d(2), 1),
    ("norm", nn.LayerNorm(72), 3),
])
def test_unsupported_module_is_an_error_naming_the_layer(tmp_path, where, module, layer):
    net = build_network(SMALL_SPEC, rule_config("softhebb"))
    setattr(net.layers[layer - 1], where, module)
    with pytest.raises(ValueError, match=rf"layer {layer} .*{type(module).__name__}"):
        export_plain(net, tmp_path)
    assert not (tmp_path / "model.safetensors").exists()


def test_spiking_network_is_an_error_naming_the_layer(tmp_path):
    net = build_network(SMALL_SPEC, rule_config("softhebb"), spiking=SpikingConfig(time_steps=2))
    with pytest.raises(ValueError, match="layer 1 .*spiking"):
        export_plain(net, tmp_path)


TINY_SPEC = """
name = "tiny"
input_channels = 3
input_size = 32

[[layers]]
out_channels = 4
kernel_size = 3
padding = 1
padding_mode = "reflect"
activation = { name = "triangle", power = 0.7 }
pool = { type = "max", kernel_size = 4, stride = 4 }

[[layers]]
type = "linear"
out_channels = 5
activation = "relu"
"""


def write_experiment(folder: Path) -> Path:
    (folder / "models").mkdir()
    (folder / "models" / "tiny.toml").write_text(TINY_SPEC)
    exp = folder / "experiments" / "tiny_exp.toml"
    exp.parent.mkdir()
    exp.write_text('model = "tiny"\n[data]\ndataset = "cifar10-mini"\ntrain_subset = 20\n'
                   '[[runs]]\nrule = "softhebb"\nlabel = "sh"\nseeds = [0]\noptions = { lr = [0.05, 0.01] }\n')
    return exp


def test_cli_missing_checkpoint_names_the_path_and_the_command(tmp_path, capsys):
    exp = write_experiment(tmp_path)
    assert main(["export", str(exp), "--label", "sh"]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "experiments" / "checkpoints" / "tiny_exp" / "sh_seed0.pt") in err
    assert "liouna-snn run" in err
    assert main(["export", str(exp), "--label", "nope"]) == 2
    assert "'sh'" in capsys.readouterr().err


def test_cli_exports_a_trained_run(tmp_path, capsys):
    exp = write_experiment(tmp_path)
    spec = load_spec(tmp_path / "models" / "tiny.toml")
    net = build_network(spec, [rule_config("softhebb", lr=0.05), rule_config("softhebb", lr=0.01)],
                        compute_dtype=torch.bfloat16)
    data = load_dataset("cifar10-mini", None, "train").subset(20)
    mean, std = data.channel_stats()
    train_unsupervised(net, data, TrainConfig(batch_size=10), mean=mean, std=std, progress=False,
                       checkpoint=tmp_path / "experiments" / "checkpoints" / "tiny_exp" / "sh_seed0.pt")
    out = tmp_path / "export"
    assert main(["export", str(exp), "--label", "sh", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "load_model.py" in printed
    model = load_plain(out)
    assert model.architecture["input"]["mean"] == pytest.approx(mean.tolist())
    rebuilt = load_trained_network(exp, "sh").network  # float32, from the checkpoint
    assert torch.equal(rebuilt.layers[0].weight, net.layers[0].weight)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():  # same float32 weights; the two convolution algorithms may sum in different orders
        torch.testing.assert_close(model(x), rebuilt(x), rtol=1e-5, atol=1e-5)


def test_cli_exports_the_network_of_the_chosen_precision_beside_the_first(tmp_path, capsys):
    """A run trained in bf16 and in fp32 keeps two checkpoints; --precision picks one, into its own folder."""
    exp = write_experiment(tmp_path)
    spec = load_spec(tmp_path / "models" / "tiny.toml")
    folder = tmp_path / "experiments" / "checkpoints" / "tiny_exp"
    data = load_dataset("cifar10-mini", None, "train").subset(20)
    nets = {}
    for precision, dtype, name in (("bf16", torch.bfloat16, "sh_seed0.pt"), ("fp32", None, "sh_seed0_fp32.pt")):
        nets[precision] = build_network(spec, [rule_config("softhebb", lr=0.05), rule_config("softhebb", lr=0.01)],
                                        compute_dtype=dtype)
        train_unsupervised(nets[precision], data, TrainConfig(batch_size=10), progress=False, checkpoint=folder / name)
    for precision, name in (("bf16", "sh_seed0.pt"), ("fp32", "sh_seed0_fp32.pt"), (None, "sh_seed0.pt")):
        trained = load_trained_network(exp, "sh", precision=precision)
        assert trained.checkpoint == folder / name
        assert torch.equal(trained.network.layers[0].weight, nets[precision or "bf16"].layers[0].weight)
    assert main(["export", str(exp), "--label", "sh", "--precision", "fp32", "--no-input-stats"]) == 0
    assert "sh_seed0_fp32.pt" in capsys.readouterr().out
    assert (tmp_path / "experiments" / "exports" / "tiny_exp" / "sh_seed0_fp32" / "model.safetensors").is_file()
    (folder / "sh_seed0_fp32.pt").unlink()
    with pytest.raises(FileNotFoundError, match=r"no checkpoint for run 'sh' seed 0 trained in fp32 at .*"
                                                r"sh_seed0_fp32\.pt; train it first: .* --precision fp32"):
        load_trained_network(exp, "sh", precision="fp32")

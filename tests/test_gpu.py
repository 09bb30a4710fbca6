"""On a CUDA device: the spiking neurons, learning steps and blockwise resume run where their data are.

Skipped without a GPU (the CPU suite covers the same code on the CPU); ``generator_on``'s CPU behaviour is
tested here too, as it decides where a learning step's random draws are made.
"""
import pytest
import torch

from liouna_snn import build_network, rule_config
from liouna_snn.spiking import SpikingConfig, generator_on

from .test_network import SMALL_SPEC

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

BACKENDS = [("native-lif", {"reset": "zero"}), ("snntorch-leaky", {"reset": "zero"}), ("norse-lif", {}),
            ("norse-lifbox", {})]


def test_generator_on_the_same_device_is_the_generator_itself():
    g = torch.Generator().manual_seed(0)
    assert generator_on("cpu", g) is g and generator_on(torch.device("cpu"), g) is g
    assert generator_on("cpu", None) is None


@cuda
def test_a_cpu_generator_seeds_a_device_generator_deterministically():
    a = generator_on("cuda", torch.Generator().manual_seed(3))
    b = generator_on("cuda", torch.Generator().manual_seed(3))
    assert a.device.type == "cuda"
    assert torch.equal(torch.rand(5, generator=a, device="cuda"), torch.rand(5, generator=b, device="cuda"))


@cuda
@pytest.mark.parametrize("encoder", ["constant-current", "bernoulli", "poisson"])
@pytest.mark.parametrize("name,params", BACKENDS)
def test_spiking_learning_and_inference_on_the_gpu_match_the_backends(name, params, encoder):
    """Every backend learns and infers on CUDA with a CPU generator: deterministic, finite, on the device, and the
    backends' rates equal the native neuron's (as on the CPU)."""
    x = torch.rand(4, 3, 12, 12, generator=torch.Generator().manual_seed(0)).cuda()

    def trained(neuron, neuron_params):
        spiking = SpikingConfig(neuron, {"beta": 0.9, **neuron_params}, time_steps=6, encoder=encoder,
                                initial_membrane="uniform", inference_initial_membrane="half")
        net = build_network(SMALL_SPEC, rule_config("liouna", init_radius=3.0, lr=0.05, mask_ratio=0.5),
                            spiking=spiking).to("cuda")
        net.learn_layer(0, x, 0.0, generator=torch.Generator().manual_seed(1))
        return net

    net, again = trained(name, params), trained(name, params)
    assert net.layers[0].weight.device.type == "cuda" and torch.isfinite(net.layers[0].weight).all()
    assert torch.equal(net.layers[0].weight, again.layers[0].weight)
    out = net(x, 2)
    assert out.device.type == "cuda" and 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    if name != "native-lif":
        reference = trained(*BACKENDS[0])
        assert torch.equal(out, reference(x, 2))


@cuda
@pytest.mark.parametrize("name,params", BACKENDS)
def test_compiled_neurons_on_the_gpu_count_as_eager_ones(name, params):
    from liouna_snn.neurons import compiled_counts, make_neuron
    from liouna_snn.spiking import spike_counts

    neuron = make_neuron(name, beta=0.9, **params)
    current = torch.randn(2, 8, 5, 5, device="cuda")
    eager = spike_counts(neuron, current, 6)
    compiled = spike_counts(neuron, current, 6, loop=compiled_counts(neuron, 6))
    assert torch.equal(eager, compiled)


@cuda
def test_blockwise_training_resumes_on_the_gpu(tmp_path):
    from liouna_snn.blockwise import BlockwiseConfig, build_resnet_model, train_blockwise
    from liouna_snn.data import load_dataset

    data = load_dataset("cifar10-mini", split="train").subset(64)
    cfg = BlockwiseConfig(mode="blockwise", loss="barlow-twins", epochs=2, batch_size=16, seed=0,
                          checkpoint_every=2)
    ckpt = tmp_path / "bw.pt"
    first = train_blockwise(build_resnet_model("resnet18", cfg, width=4), data, device="cuda", checkpoint=ckpt,
                            progress=False)
    resumed = train_blockwise(build_resnet_model("resnet18", cfg, width=4), data, device="cuda", checkpoint=ckpt,
                              progress=False)   # the finished checkpoint loads its generators on the CPU
    assert resumed["steps"] == first["steps"]

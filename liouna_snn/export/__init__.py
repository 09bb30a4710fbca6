"""Exporters: trained layers to files usable without this package.

- :func:`export_plain`: a rate-mode network to a plain PyTorch CNN (``model.safetensors`` +
  ``architecture.json`` + ``load_model.py``, which needs only torch and safetensors).
- :func:`load_plain`: read such an export back as standard ``torch.nn`` modules.
- :func:`load_trained_network`: rebuild an experiment run's network from its checkpoint.
- :func:`export_torchvision_resnet`: a blockwise/end-to-end ResNet backbone as a torchvision ResNet state dict.
- :func:`export_nir` / :func:`import_nir`: a spiking network to and from a NIR graph (needs ``nir``).
"""
from .nir_graph import NIR_DT, export_nir, import_nir
from .resnet import export_torchvision_resnet, torchvision_resnet_state_dict
from .plain import ARCHITECTURE_FILE, FORMAT, FORMAT_VERSION, LOADER_FILE, WEIGHTS_FILE, describe, export_plain
from .standalone import Triangle, features, load_plain, standardize
from .trained import TrainedRun, checkpoint_path, input_statistics, load_trained_network

__all__ = ["ARCHITECTURE_FILE", "FORMAT", "FORMAT_VERSION", "LOADER_FILE", "NIR_DT", "TrainedRun", "Triangle",
           "WEIGHTS_FILE", "checkpoint_path", "describe", "export_nir", "export_plain", "import_nir", "features", "input_statistics", "load_plain",
           "load_trained_network", "standardize", "export_torchvision_resnet", "torchvision_resnet_state_dict"]

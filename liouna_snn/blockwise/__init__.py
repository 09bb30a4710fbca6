"""Blockwise self-supervised learning (Siddiqui et al. 2023) and the end-to-end backprop baselines.

- :mod:`.losses`: Barlow Twins, VICReg, NT-Xent (SimCLR) as pure functions.
- :mod:`.resnet`: torchvision ResNet-18/50 with a CIFAR stem split into 4 stages; heads, projectors.
- :mod:`.convnet`: a Hebbian model spec as a backprop CNN (the supervised baseline of SoftHebb's net).
- :mod:`.optim`: LARS, SGD, warm-up + cosine.
- :mod:`.trainer`: :class:`BlockwiseConfig`, :class:`BlockwiseModel`, :func:`train_blockwise`.
"""
from .convnet import SpecConvNet
from .losses import LOSSES, barlow_twins_loss, make_loss, nt_xent_loss, vicreg_loss
from .optim import LARS, warmup_cosine
from .resnet import ResNetBackbone, Projector, StageHead, cifar_resnet18, cifar_resnet50
from .trainer import (MODES, NO_AUGMENT, SUPERVISED_AUGMENT, SUPERVISED_SGD, BlockwiseConfig, BlockwiseModel,
                      build_resnet_model, build_spec_model, objective_losses, supervised_config, train_blockwise)

__all__ = ["LARS", "LOSSES", "MODES", "NO_AUGMENT", "SUPERVISED_AUGMENT", "SUPERVISED_SGD", "BlockwiseConfig",
           "BlockwiseModel", "Projector", "ResNetBackbone", "SpecConvNet", "StageHead", "barlow_twins_loss",
           "build_resnet_model", "build_spec_model", "cifar_resnet18", "cifar_resnet50", "make_loss", "nt_xent_loss",
           "objective_losses", "supervised_config", "train_blockwise", "vicreg_loss", "warmup_cosine"]

"""The augmented linear probe (SoftHebb's Imagenette protocol): with an identity view it is the cached probe,
with augmentation it draws new views each epoch, and its options are checked by name."""
import pytest
import torch

from liouna_snn.data import load_dataset
from liouna_snn.data.augment import Augment
from liouna_snn.evaluation import (PROBE_AUGMENTS, augmented_probe, extract_features, linear_probe, probe_augment,
                                   probe_layers, recorded_probe_options)
from liouna_snn.experiment import load_experiment

from .test_features import MEAN, STD, _trained_looking

IDENTITY = Augment(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, grayscale_p=0.0)


def crops(split: str, n: int):
    data = load_dataset("cifar10-mini", split=split).subset(n)
    data.images = data.images[:, :, 10:22, 10:22].contiguous()  # 12x12 crops for the small spec
    return data


@pytest.fixture(scope="module")
def data():
    return crops("train", 90), crops("test", 40)


def test_identity_view_gives_the_cached_probe(data):
    """Same initialisation, batch order, dropout masks and standardisation: the same classifier up to float rounding,
    so the same accuracies (the view is an exact identity resampling; the sums differ only in float64 order)."""
    train, test = data
    net = _trained_looking()
    for depth in (1, 2):
        ftr, ytr = extract_features(net, train, depth, mean=MEAN, std=STD, progress=False, dtype=torch.float32)
        fte, yte = extract_features(net, test, depth, mean=MEAN, std=STD, progress=False, dtype=torch.float32)
        cached = linear_probe(ftr, ytr, fte, yte, epochs=4, batch_size=16, seed=5, progress=False)
        augmented = augmented_probe(net, train, test, depth, augment=IDENTITY, mean=MEAN, std=STD, epochs=4,
                                    batch_size=16, seed=5, progress=False)
        assert augmented["top1"] == cached["top1"] and augmented["train_top1"] == cached["train_top1"]
        assert augmented["features"] == ftr.shape[1]


def test_augmented_views_change_the_result_and_a_seed_repeats_it(data):
    train, test = data
    net = _trained_looking()
    opts = dict(mean=MEAN, std=STD, epochs=3, batch_size=16, seed=1, progress=False)
    flips = augmented_probe(net, train, test, 2, augment=PROBE_AUGMENTS["crop-flip"], **opts)
    again = augmented_probe(net, train, test, 2, augment=PROBE_AUGMENTS["crop-flip"], **opts)
    plain = augmented_probe(net, train, test, 2, augment=IDENTITY, **opts)
    assert (flips["top1"], flips["train_top1"]) == (again["top1"], again["train_top1"])
    # crops of 8-100 % of the image are different training inputs: the fit to the un-augmented images changes
    assert flips["train_top1"] != plain["train_top1"]
    assert flips["augment"]["scale"] == (0.08, 1.0) and flips["augment"]["flip_p"] == 0.5


def test_probe_layers_records_the_augmentation_and_keeps_the_knn_on_plain_features(data):
    train, test = data
    net = _trained_looking()
    opts = dict(mean=MEAN, std=STD, progress=False, epochs=2, knn_k=5, feature_batch_size=32)
    plain = probe_layers(net, train, test, [1, 2], **opts)
    augmented = probe_layers(net, train, test, [1, 2], augment="flip", **opts)
    assert [r["probe_augment"] for r in augmented] == ["flip", "flip"]
    assert "probe_augment" not in plain[0]
    assert [r["knn_top1"] for r in augmented] == [r["knn_top1"] for r in plain]
    assert [r["features"] for r in augmented] == [r["features"] for r in plain]


def test_unknown_augmentation_names_the_allowed_ones(data, tmp_path):
    train, test = data
    with pytest.raises(ValueError, match=r"unknown probe augmentation 'jitter'; allowed: none, flip, crop-flip"):
        probe_layers(_trained_looking(), train, test, [1], augment="jitter", progress=False)
    assert probe_augment("none") is None
    with pytest.raises(ValueError, match="needs an augmentation"):
        augmented_probe(_trained_looking(), train, test, 1, augment=None, progress=False)
    path = tmp_path / "e.toml"
    path.write_text('model = "x"\n[data]\ndataset = "cifar10-mini"\n[probe]\naugment = "rotate"\n'
                    '[[runs]]\nrule = "random"\n')
    with pytest.raises(ValueError, match=r"\[probe\]: unknown probe augmentation 'rotate'"):
        load_experiment(path)


def test_records_made_before_the_augment_option_still_match():
    options = {"epochs": 50, "layers": [3], "augment": "none", "knn_k": 20}
    assert recorded_probe_options(options) == {"epochs": 50, "knn_k": 20}
    assert recorded_probe_options({**options, "augment": "crop-flip"})["augment"] == "crop-flip"


@pytest.mark.parametrize("values", [[2.5], [True], "12", ["3a"], [], [0], [4], ["all", 1]])
def test_probe_depths_take_whole_depths_or_all_only(values):
    from liouna_snn.evaluation import probe_depths

    with pytest.raises(ValueError, match=r"\[probe\] layers: probe layers must be 'all' or depths in 1\.\.3"):
        probe_depths(values, 3, "[probe] layers")
    assert probe_depths(["3", 1, 3], 3, "x") == [1, 3] and probe_depths(["all"], 3, "x") == [1, 2, 3]


def test_a_list_as_augmentation_name_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown probe augmentation \['flip'\]; allowed"):
        probe_augment(["flip"])


"""liouna_snn.data: loaders on tiny files written in the official layouts, and batch iteration."""

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from liouna_snn import data as D
from liouna_snn.data import (DATASETS, DatasetNotFoundError, ImageTensors, iterate_batches,
                             load_dataset, num_batches)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LIOUNA_SNN_CACHE", str(tmp_path / "cache"))


def _cifar_rows(n, marks):
    """(n, 3072) uint8 rows; marks: {(i, c, r, col): value} set at the official flat offset c*1024 + r*32 + col."""
    rows = np.zeros((n, 3072), dtype=np.uint8)
    for (i, c, r, col), v in marks.items():
        rows[i, c * 1024 + r * 32 + col] = v
    return rows


def _pickle(path, obj):
    path.write_bytes(pickle.dumps(obj))


# --------------------------------------------------------------------------- CIFAR-10

def _write_cifar10(root):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for b in range(1, 6):   # 2 images per batch, labels encode the batch: 2b-2, 2b-1 (mod 10)
        marks = {(0, 0, 1, 2): 10 * b, (1, 2, 31, 0): 200 + b}
        _pickle(folder / f"data_batch_{b}", {"data": _cifar_rows(2, marks),
                                             "labels": [(2 * b - 2) % 10, (2 * b - 1) % 10]})
    # test batch pickled with bytes keys, like the official Python 2 files read with encoding="bytes"
    _pickle(folder / "test_batch", {b"data": _cifar_rows(3, {(2, 1, 5, 7): 99}), b"labels": [7, 8, 9]})
    _pickle(folder / "batches.meta", {b"label_names": [n.encode() for n in D.cifar.CIFAR10_CLASSES]})


def test_cifar10_pixels_labels_and_order(tmp_path):
    _write_cifar10(tmp_path)
    train = load_dataset("cifar10", tmp_path, "train")
    assert train.images.shape == (10, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.labels.dtype == torch.int64 and train.labels.tolist() == list(range(10))
    assert train.classes == list(D.cifar.CIFAR10_CLASSES) and train.name == "cifar10/train"
    # R plane, row 1, col 2 of the first image of each batch; B plane, row 31, col 0 of the second
    assert train.images[0::2, 0, 1, 2].tolist() == [10, 20, 30, 40, 50]
    assert train.images[1::2, 2, 31, 0].tolist() == [201, 202, 203, 204, 205]
    assert int(train.images.sum(dtype=torch.int64)) == 150 + 1015

    test = load_dataset("cifar10", str(tmp_path), "test")
    assert test.images.shape == (3, 3, 32, 32) and test.labels.tolist() == [7, 8, 9]
    assert test.images[2, 1, 5, 7] == 99 and int(test.images.sum(dtype=torch.int64)) == 99


def test_cifar10_image_size_resizes(tmp_path):
    _write_cifar10(tmp_path)
    small = load_dataset("cifar10", tmp_path, "test", image_size=16)
    assert small.images.shape == (3, 3, 16, 16) and small.images.dtype == torch.uint8


# --------------------------------------------------------------------------- CIFAR-100

def test_cifar100_fine_and_coarse_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rows = _cifar_rows(4, {(3, 1, 0, 31): 77})
    for split in ("train", "test"):
        _pickle(folder / split, {b"data": rows, b"fine_labels": [0, 42, 99, 5],
                                 b"coarse_labels": [0, 19, 3, 1], b"filenames": [b"a"] * 4})
    _pickle(folder / "meta", {"fine_label_names": [f"f{i}" for i in range(100)],
                              "coarse_label_names": [f"c{i}" for i in range(20)]})
    fine = load_dataset("cifar100", tmp_path, "test")
    assert fine.images.shape == (4, 3, 32, 32) and fine.images[3, 1, 0, 31] == 77
    assert fine.labels.tolist() == [0, 42, 99, 5] and len(fine.classes) == 100
    assert fine.name == "cifar100/test"
    coarse = load_dataset("cifar100", tmp_path, "train", label_kind="coarse")
    assert coarse.labels.tolist() == [0, 19, 3, 1] and coarse.classes[19] == "c19"


# --------------------------------------------------------------------------- STL-10

def _stl_bytes(n, marks):
    """n images in the official column-major layout: (i, c, row, col) at i*27648 + c*9216 + col*96 + row."""
    raw = np.zeros(n * 3 * 96 * 96, dtype=np.uint8)
    for (i, c, r, col), v in marks.items():
        raw[i * 27648 + c * 9216 + col * 96 + r] = v
    return raw.tobytes()


def test_stl10_column_major_and_labels(tmp_path):
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    names = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
    (folder / "class_names.txt").write_text("\n".join(names) + "\n")
    (folder / "train_X.bin").write_bytes(_stl_bytes(2, {(1, 2, 3, 70): 123, (0, 0, 95, 0): 9}))
    (folder / "train_y.bin").write_bytes(bytes([1, 10]))
    (folder / "unlabeled_X.bin").write_bytes(_stl_bytes(3, {(2, 1, 0, 5): 50}))

    train = load_dataset("stl10", tmp_path, "train")
    assert train.images.shape == (2, 3, 96, 96) and train.images.dtype == torch.uint8
    assert train.images[1, 2, 3, 70] == 123 and train.images[1, 2, 70, 3] == 0
    assert train.images[0, 0, 95, 0] == 9
    assert train.labels.tolist() == [0, 9] and train.classes == names

    unlabeled = load_dataset("stl10", tmp_path, "unlabeled")
    assert unlabeled.labels.tolist() == [-1, -1, -1] and unlabeled.images[2, 1, 0, 5] == 50

    with pytest.raises(DatasetNotFoundError, match="test_X.bin"):
        load_dataset("stl10", tmp_path, "test")


# --------------------------------------------------------------------------- ImageFolder / Imagenette

COLORS = {"cat": (255, 0, 0), "dog": (0, 128, 255)}


def _write_tree(root, size=(8, 8)):
    for split in ("train", "val"):
        for k, (cls, color) in enumerate(COLORS.items()):
            (root / split / cls).mkdir(parents=True)
            for j in range(2 if split == "train" else 1):
                Image.new("RGB", size, color).save(root / split / cls / f"{j}.png")
    (root / "train" / "cat" / "notes.txt").write_text("not an image")


def test_imagefolder_native_resize_and_cache(tmp_path, monkeypatch):
    _write_tree(tmp_path / "tree")
    train = load_dataset("imagefolder", tmp_path / "tree", "train")
    assert train.images.shape == (4, 3, 8, 8) and train.images.dtype == torch.uint8
    assert train.classes == ["cat", "dog"] and train.labels.tolist() == [0, 0, 1, 1]
    assert train.images[0, :, 3, 5].tolist() == [255, 0, 0]
    assert train.images[3, :, 7, 7].tolist() == [0, 128, 255]

    val = load_dataset("imagefolder", tmp_path / "tree", "test", image_size=4)   # "test" = "val"
    assert val.name == "imagefolder/val" and val.images.shape == (2, 3, 4, 4)
    assert (val.images[1] == torch.tensor([0, 128, 255], dtype=torch.uint8)[:, None, None]).all()

    # second load comes from the cache: decoding would now fail
    monkeypatch.setattr(D.imagefolder, "decode_image", lambda *a: 1 / 0)
    again = load_dataset("imagefolder", tmp_path / "tree", "val", image_size=4)
    assert torch.equal(again.images, val.images)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2
    assert not list((tmp_path / "cache").glob("*.tmp"))


def test_imagefolder_mixed_sizes_need_image_size(tmp_path):
    _write_tree(tmp_path)
    Image.new("RGB", (12, 6), (0, 255, 0)).save(tmp_path / "train" / "dog" / "wide.png")
    with pytest.raises(ValueError, match="image_size"):
        load_dataset("imagefolder", tmp_path, "train")
    data = load_dataset("imagefolder", tmp_path, "train", image_size=6)   # 12x6 -> crop of the centre
    assert data.images.shape == (5, 3, 6, 6)
    assert data.images[4, :, 0, 0].tolist() == [0, 255, 0]


def test_imagenette_parent_folder_and_default_size(tmp_path):
    _write_tree(tmp_path / "imagenette2-160", size=(10, 10))
    data = load_dataset("imagenette", tmp_path, "val")
    assert data.name == "imagenette/val" and data.images.shape == (2, 3, 160, 160)
    assert data.labels.tolist() == [0, 1] and data.classes == ["cat", "dog"]


# --------------------------------------------------------------------------- embedded mini set, errors

def test_cifar10_mini():
    train, test = load_dataset("cifar10-mini"), load_dataset("cifar10-mini", split="test")
    assert train.images.shape == (4000, 3, 32, 32) and test.images.shape == (1000, 3, 32, 32)
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    assert train.classes[0] == "airplane" and len(train.classes) == 10
    assert train.labels[:5].tolist() == [6, 9, 9, 4, 1]          # official data_batch_1 order
    assert set(test.labels.tolist()) == set(range(10))
    sub = train.subset(7)
    assert len(sub) == 7 and torch.equal(sub.images, train.images[:7]) and len(train.subset(10**6)) == 4000


@pytest.mark.parametrize("name, layout", [
    ("cifar10", "cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}"),
    ("cifar100", "cifar-100-python/{train, test, meta}"),
    ("stl10", "stl10_binary/{train_X.bin"),
    ("imagenette", "{train,val}/<class>"),
    ("imagefolder", "{train,val}/<class>"),
])
def test_missing_folder_error(tmp_path, name, layout):
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset(name, tmp_path / "nowhere")
    msg = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert name in msg and str(tmp_path / "nowhere") in msg and layout in msg
    if name != "imagefolder":
        assert "download=True" in msg and "http" in msg


def test_unknown_name_and_split():
    with pytest.raises(ValueError, match="cifar10-mini.*imagefolder"):
        load_dataset("mnist")
    with pytest.raises(ValueError, match="train, test, unlabeled"):
        load_dataset("stl10", split="valid")
    with pytest.raises(ValueError, match="train, test"):
        load_dataset("cifar10-mini", split="val")


# --------------------------------------------------------------------------- ImageTensors, batches

def _indexed(n, channels=3):
    """Image i is filled with the value i; label i."""
    images = torch.arange(n, dtype=torch.uint8)[:, None, None, None].expand(n, channels, 2, 2).contiguous()
    return ImageTensors(images, torch.arange(n), [str(i) for i in range(n)], "toy/train")


def test_channel_stats():
    images = torch.zeros(4, 2, 2, 2, dtype=torch.uint8)
    images[:2, 0] = 255             # channel 0: half 1.0, half 0.0 -> mean 0.5, std 0.5
    images[:, 1] = 51               # channel 1: constant 0.2 -> std 0
    mean, std = ImageTensors(images, torch.zeros(4, dtype=torch.int64), ["a"], "t").channel_stats()
    assert mean.dtype == std.dtype == torch.float32 and mean.shape == (2,)
    torch.testing.assert_close(mean, torch.tensor([0.5, 0.2]))
    torch.testing.assert_close(std, torch.tensor([0.5, 0.0]))


def test_num_batches():
    assert num_batches(10, 3, False) == 4 and num_batches(10, 3, True) == 3
    assert num_batches(9, 3, False) == 3 and num_batches(0, 3, False) == 0


@pytest.mark.parametrize("shuffle, drop_last", [(True, False), (False, False), (True, True)])
def test_each_index_once_per_epoch(shuffle, drop_last):
    data = _indexed(10)
    g = torch.Generator().manual_seed(0)
    batches = list(iterate_batches(data, 3, shuffle=shuffle, generator=g, drop_last=drop_last))
    assert len(batches) == num_batches(10, 3, drop_last)
    assert [len(y) for _, y in batches] == ([3, 3, 3] if drop_last else [3, 3, 3, 1])
    seen = torch.cat([y for _, y in batches])
    for x, y in batches:        # image and label stay paired
        assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.shape[1:] == (3, 2, 2)
        torch.testing.assert_close(x[:, 0, 0, 0], y.float() / 255)
    if drop_last:
        assert len(set(seen.tolist())) == 9
    else:
        assert sorted(seen.tolist()) == list(range(10))
        assert (seen.tolist() == list(range(10))) != shuffle


def test_seeded_shuffle_is_deterministic_and_resumable():
    data = _indexed(20)

    def epoch(seed, start=0):
        g = torch.Generator().manual_seed(seed)
        return [y.tolist() for _, y in iterate_batches(data, 6, shuffle=True, generator=g, start_batch=start)]

    first = epoch(1)
    assert first == epoch(1) and first != epoch(2)
    assert epoch(1, start=2) == first[2:] and epoch(1, start=4) == []
    # consecutive epochs from one generator differ
    g = torch.Generator().manual_seed(1)
    e1, e2 = ([y.tolist() for _, y in iterate_batches(data, 6, shuffle=True, generator=g)] for _ in range(2))
    assert e1 == first and e2 != e1
    with pytest.raises(ValueError):
        iterate_batches(data, 6, shuffle=True, start_batch=5)


def test_normalisation():
    images = torch.empty(4, 3, 2, 2, dtype=torch.uint8)
    images[:, 0], images[:, 1], images[:, 2] = 51, 102, 255      # 0.2, 0.4, 1.0
    data = ImageTensors(images, torch.zeros(4, dtype=torch.int64), ["a"], "t")
    (x, _), = iterate_batches(data, 4, shuffle=False, mean=[0.1, 0.4, 0.5], std=torch.tensor([0.5, 1.0, 0.25]))
    torch.testing.assert_close(x[:, :, 1, 1], torch.tensor([[0.2, 0.0, 2.0]]).expand(4, 3))
    (raw, _), = iterate_batches(data, 4, shuffle=False)
    torch.testing.assert_close(raw[0, :, 0, 0], torch.tensor([0.2, 0.4, 1.0]))
    with pytest.raises(ValueError, match="one per channel"):
        iterate_batches(data, 4, shuffle=False, mean=[0.1, 0.2], std=[1.0, 1.0])


def test_to_and_dataset_list():
    data = _indexed(3).to("cpu")
    assert data.images.device.type == "cpu" and len(data) == 3
    assert DATASETS == ("cifar10", "cifar10-mini", "cifar100", "stl10", "imagenette", "imagefolder")


def test_download_only_when_missing(tmp_path, monkeypatch):
    calls = []

    def fake_fetch(url, root):
        calls.append(url)
        _write_cifar10(root)

    monkeypatch.setattr(D.datasets, "fetch_archive", fake_fetch)
    assert len(load_dataset("cifar10", tmp_path, download=True)) == 10
    assert len(load_dataset("cifar10", tmp_path, "test", download=True)) == 3
    assert calls == ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"]
    with pytest.raises(ValueError, match="download"):
        load_dataset("imagefolder", tmp_path, download=True)

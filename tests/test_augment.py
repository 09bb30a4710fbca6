"""Batched SSL augmentations: shapes, ranges, per-sample randomness, exact special cases, determinism."""
import pytest
import torch

from liouna_snn.data import load_dataset
from liouna_snn.data.augment import Augment, augment_batch

OFF = dict(flip_p=0.0, jitter_p=0.0, grayscale_p=0.0, blur_p=0.0)


@pytest.fixture(scope="module")
def images():
    return load_dataset("cifar10-mini", split="train").images[:64].float() / 255


def test_views_keep_shape_and_range_and_vary_per_sample(images):
    aug = Augment(blur_p=0.5)
    x = images[:1].expand(16, -1, -1, -1)          # 16 copies of one image
    y = aug(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.dtype == torch.float32
    assert y.min() >= 0 and y.max() <= 1
    flat = y.flatten(1)
    assert torch.cdist(flat, flat).triu(1)[torch.ones(16, 16).triu(1).bool()].min() > 1e-3  # all 16 views differ


def test_same_seed_same_views_other_seed_other_views(images):
    aug = Augment(blur_p=0.5)
    a = aug(images, torch.Generator().manual_seed(5))
    b = aug(images, torch.Generator().manual_seed(5))
    c = aug(images, torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert (a - c).abs().mean() > 0.01


def test_full_crop_without_other_ops_is_the_identity(images):
    aug = Augment(scale=(1.0, 1.0), ratio=(1.0, 1.0), **OFF)
    torch.testing.assert_close(aug(images, torch.Generator().manual_seed(0)), images, atol=1e-5, rtol=0)


def test_flip_with_probability_one_mirrors_the_image(images):
    aug = Augment(scale=(1.0, 1.0), ratio=(1.0, 1.0), **{**OFF, "flip_p": 1.0})
    torch.testing.assert_close(aug(images, torch.Generator().manual_seed(0)), images.flip(-1), atol=1e-5, rtol=0)


def test_grayscale_with_probability_one_equalises_channels(images):
    aug = Augment(**{**OFF, "grayscale_p": 1.0})
    y = aug(images, torch.Generator().manual_seed(0))
    assert torch.equal(y[:, 0], y[:, 1]) and torch.equal(y[:, 1], y[:, 2])
    z = Augment(**OFF)(images, torch.Generator().manual_seed(0))     # no greyscale: colour stays
    assert (z[:, 0] - z[:, 1]).abs().mean() > 0.01


def test_small_crops_zoom_in(images):
    """A crop of 1/16 of the area, resampled to full size, is smoother than the image: neighbour differences shrink."""
    zoom = Augment(scale=(1 / 16, 1 / 16), ratio=(1.0, 1.0), **OFF)(images, torch.Generator().manual_seed(0))
    rough = lambda t: (t[..., 1:] - t[..., :-1]).abs().mean()
    assert rough(zoom) < 0.5 * rough(images)


def test_bad_options_are_errors_naming_them():
    with pytest.raises(ValueError, match="flip_p"):
        Augment(flip_p=1.5)
    with pytest.raises(ValueError, match="scale"):
        Augment(scale=(0.0, 1.0))
    with pytest.raises(ValueError, match="hue"):
        Augment(hue=0.7)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        augment_batch(torch.zeros(3, 8, 8), Augment())


def test_crop_area_and_aspect_ratio_are_in_pixels_on_non_square_images():
    """A square crop of a quarter of a 16x64 image's pixels is 16x16 px: a quarter of the width, all of the height."""
    from liouna_snn.data.augment import _crop_grid
    h, w = 16, 64
    aug = Augment(scale=(0.25, 0.25), ratio=(1.0, 1.0), **OFF)
    grid = _crop_grid(8, h, w, aug, torch.Generator().manual_seed(0), "cpu")
    span_x = (grid[..., 0].amax(dim=(1, 2)) - grid[..., 0].amin(dim=(1, 2))) / (2 * (1 - 1 / w))
    span_y = (grid[..., 1].amax(dim=(1, 2)) - grid[..., 1].amin(dim=(1, 2))) / (2 * (1 - 1 / h))
    torch.testing.assert_close(span_x, torch.full((8,), 0.25))   # fractions of the width and of the height
    torch.testing.assert_close(span_y, torch.full((8,), 1.0))


def test_views_are_float32_inside_a_bf16_autocast_region(images):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = Augment(blur_p=1.0)(images[:8], torch.Generator().manual_seed(0))
    outside = Augment(blur_p=1.0)(images[:8], torch.Generator().manual_seed(0))
    assert inside.dtype == torch.float32 and torch.equal(inside, outside)

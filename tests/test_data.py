"""Tests of nasntk.data: every source, sampling, resizing, channels, normalisation, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nasntk import data
from nasntk.errors import NasntkError


def _npz(path, images, labels, **extra):
    np.savez(path, images=images, labels=labels, **extra)
    return f"npz:{path}"


def _counts(y: torch.Tensor, k: int) -> list[int]:
    return torch.bincount(y, minlength=k).tolist()


# ------------------------------------------------------------------------------------------------
# digits
# ------------------------------------------------------------------------------------------------
def test_digits_info_and_batch_shape():
    assert data.info("digits") == {"in_chans": 1, "img_size": 32, "num_classes": 10, "size": 1797}
    b = data.load("digits", 25)
    assert b.x.shape == (25, 1, 32, 32) and b.x.dtype == torch.float32
    assert b.y.dtype == torch.int64 and b.num_classes == 10 and b.source == "digits"
    # balanced: 25 = 10·2 + 5 → the five lowest classes get one more
    assert _counts(b.y, 10) == [3, 3, 3, 3, 3, 2, 2, 2, 2, 2]


def test_digits_pixels_are_standardised_sklearn_images():
    from sklearn.datasets import load_digits

    d = load_digits()
    ref = d.images / 16.0
    ref = (ref - ref.mean()) / ref.std()
    b = data.load("digits", 20, seed=3, img_size=8)  # native size: no resampling
    x = b.x[:, 0].double().numpy()
    for xi, yi in zip(x, b.y.tolist(), strict=True):
        dist = np.abs(ref - xi).reshape(len(ref), -1).max(axis=1)
        j = int(dist.argmin())
        assert dist[j] < 1e-5 and d.target[j] == yi


def test_sampling_is_seeded():
    a, b = data.load("digits", 30, seed=7), data.load("digits", 30, seed=7)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    c = data.load("digits", 30, seed=8)
    assert not torch.equal(a.x, c.x)


def test_channels_and_resize():
    grey = data.load("digits", 10, img_size=16)
    rgb = data.load("digits", 10, in_chans=3, img_size=16)
    assert rgb.x.shape == (10, 3, 16, 16)
    for c in range(3):  # 1 → 3 repeats the (standardised) grey channel
        assert torch.allclose(rgb.x[:, c], grey.x[:, 0])
    with pytest.raises(NasntkError, match="in_chans"):
        data.load("digits", 10, in_chans=2)


def test_resize_keeps_constant_images_constant_and_3_to_1_is_luminance(tmp_path):
    images = np.zeros((4, 6, 6, 3), dtype=np.uint8)
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)]
    for i, col in enumerate(colours):
        images[i] = col
    src = _npz(tmp_path / "c.npz", images, np.array([0, 1, 0, 1]))
    b = data.load(src, 4, in_chans=1, img_size=13)
    assert b.x.shape == (4, 1, 13, 13)
    per_image = b.x.reshape(4, -1)
    assert torch.allclose(per_image, per_image[:, :1].expand_as(per_image), atol=1e-5)
    # luminance 0.299 R + 0.587 G + 0.114 B, then standardised over the source's 4 images
    luma = np.array([0.299, 0.587, 0.114, 1.0])
    ref = (luma - luma.mean()) / luma.std()
    got = {round(float(v), 4) for v in per_image[:, 0]}
    assert got == {round(float(v), 4) for v in ref}


def test_balanced_counts_hand_over_shortfall():
    assert data.balanced_counts(np.array([5, 5, 5]), 7).tolist() == [3, 2, 2]
    # class 0 has only one image: its 2 missing go to classes 1 and 2 (in order)
    assert data.balanced_counts(np.array([1, 9, 9]), 9).tolist() == [1, 4, 4]
    assert data.balanced_counts(np.array([1, 2, 9]), 12).tolist() == [1, 2, 9]


# ------------------------------------------------------------------------------------------------
# npz
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["nhw", "nhwc", "nchw"])
def test_npz_layouts_and_per_channel_standardisation(tmp_path, layout):
    rng = np.random.default_rng(0)
    chans = 1 if layout == "nhw" else 3
    nchw = rng.integers(0, 256, size=(12, chans, 5, 5)).astype(np.uint8)
    images = {"nhw": nchw[:, 0], "nhwc": nchw.transpose(0, 2, 3, 1), "nchw": nchw}[layout]
    labels = np.array([3, 7, 9] * 4)  # arbitrary label values → 0, 1, 2
    src = _npz(tmp_path / f"{layout}.npz", images, labels)
    assert data.info(src) == {"in_chans": chans, "img_size": 5, "num_classes": 3, "size": 12}
    b = data.load(src, 12)
    x01 = nchw / 255.0
    mean = x01.mean(axis=(0, 2, 3))[None, :, None, None]
    std = x01.std(axis=(0, 2, 3))[None, :, None, None]
    ref = (x01 - mean) / std
    for xi, yi in zip(b.x.double().numpy(), b.y.tolist(), strict=True):
        j = int(np.abs(ref - xi).reshape(12, -1).max(axis=1).argmin())
        assert np.allclose(ref[j], xi, atol=1e-5)
        assert {3: 0, 7: 1, 9: 2}[labels[j]] == yi


def test_npz_float_images_and_cache_follows_file_changes(tmp_path):
    path = tmp_path / "f.npz"
    src = _npz(path, np.ones((4, 3, 3), dtype=np.float32), np.array([0, 0, 1, 1]))
    assert data.info(src)["size"] == 4
    import os
    import time

    _npz(path, np.ones((6, 3, 3), dtype=np.float32), np.array([0, 0, 0, 1, 1, 1]))
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9 + int(time.time() % 1)))
    assert data.info(src)["size"] == 6


def test_standard_sources_use_standard_constants(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    cif = rng.integers(0, 256, size=(6, 4, 4, 3)).astype(np.uint8)
    src = f"cifar10:{tmp_path / 'c.npz'}"
    np.savez(tmp_path / "c.npz", images=cif, labels=np.array([0, 1, 2, 0, 1, 2]))
    b = data.load(src, 6)
    mean = np.array([0.4914, 0.4822, 0.4465])[None, :, None, None]
    std = np.array([0.2470, 0.2435, 0.2616])[None, :, None, None]
    ref = (cif.transpose(0, 3, 1, 2) / 255.0 - mean) / std
    got = sorted(b.x.double().numpy().reshape(6, -1).tolist())
    np.testing.assert_allclose(got, sorted(ref.reshape(6, -1).tolist()), atol=1e-5)

    mn = rng.integers(0, 256, size=(4, 5, 5)).astype(np.uint8)
    (tmp_path / "data").mkdir()
    np.savez(tmp_path / "data" / "mnist_test.npz", images=mn, labels=np.array([0, 1, 0, 1]))
    monkeypatch.setenv("NASNTK_SHARED", str(tmp_path))  # "mnist" alone uses the default file
    b = data.load("mnist", 4, in_chans=3)
    ref = (mn / 255.0 - 0.1307) / 0.3081
    got = sorted(b.x[:, 1].double().numpy().reshape(4, -1).tolist())
    np.testing.assert_allclose(got, sorted(ref.reshape(4, -1).tolist()), atol=1e-5)
    assert torch.equal(b.x[:, 0], b.x[:, 2])


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: p.write_bytes(b"not a zip file"), "cannot read"),
        (lambda p: np.savez(p, images=np.zeros((3, 4, 4))), "no array 'labels'"),
        (lambda p: np.savez(p, images=np.zeros((3, 4, 4, 5)), labels=np.arange(3)), "shape"),
        (lambda p: np.savez(p, images=np.zeros((3, 16)), labels=np.arange(3)), "shape"),
        (lambda p: np.savez(p, images=np.zeros((3, 4, 4)), labels=np.arange(4)), "3 images but 4"),
        (lambda p: np.savez(p, images=np.zeros((3, 4, 4)), labels=np.zeros(3)), "2 classes"),
        (lambda p: np.savez(p, images=np.full((2, 4, 4), np.nan), labels=np.arange(2)), "NaN"),
        (lambda p: np.savez(p, images=np.zeros((2, 4, 4)), labels=np.zeros((2, 2))), "labels"),
    ],
)
def test_npz_bad_inputs(tmp_path, make, match):
    path = tmp_path / "bad.npz"
    make(path)
    with pytest.raises(NasntkError, match=match) as err:
        data.load(f"npz:{path}", 2)
    assert "\n" not in str(err.value)


def test_bad_source_strings_and_sizes(tmp_path):
    src = _npz(tmp_path / "ok.npz", np.zeros((4, 4, 4), dtype=np.uint8), np.array([0, 1, 0, 1]))
    cases = [
        ("imagenet:/x", "unknown data source"),
        ("", "non-empty"),
        ("npz", "needs a path"),
        ("digits:/x", "takes no path"),
        (f"npz:{tmp_path / 'missing.npz'}", "no such file"),
        (f"npz:{tmp_path}", "is a folder"),
        (f"folder:{tmp_path / 'ok.npz'}", "not a folder"),
        (f"cifar10:{tmp_path / 'nope.npz'}", "no such file"),
    ]
    for source, match in cases:
        with pytest.raises(NasntkError, match=match):
            data.load(source, 2)
    with pytest.raises(NasntkError, match="fewer than the 5 asked"):
        data.load(src, 5)
    with pytest.raises(NasntkError, match="positive integer"):
        data.load(src, 0)
    with pytest.raises(NasntkError, match="3-channel"):
        data.load(f"cifar10:{tmp_path / 'ok.npz'}", 2)  # CIFAR-10 constants need RGB images


# ------------------------------------------------------------------------------------------------
# folder
# ------------------------------------------------------------------------------------------------
def _image_folder(root, modes=("RGB", "RGB")):
    from PIL import Image

    for k, (name, mode) in enumerate(zip(("cat", "dog"), modes, strict=True)):
        d = root / name
        d.mkdir(parents=True)
        for i in range(3):
            size = (6, 4) if i < 2 else (3, 2)  # one odd size per class, resized to 6×4
            colour = (40 * k + 10 * i,) * (1 if mode == "L" else 3)
            Image.new(mode, size, colour if mode != "L" else colour[0]).save(d / f"{i}.png")
        (d / "notes.txt").write_text("not an image, ignored")
    return f"folder:{root}"


def test_folder_source(tmp_path):
    src = _image_folder(tmp_path / "imgs")
    assert data.info(src) == {"in_chans": 3, "img_size": 6, "num_classes": 2, "size": 6}
    b = data.load(src, 6, img_size=8)
    assert b.x.shape == (6, 3, 8, 8) and _counts(b.y, 2) == [3, 3]
    grey = _image_folder(tmp_path / "grey", modes=("L", "L"))
    assert data.info(grey)["in_chans"] == 1
    mixed = _image_folder(tmp_path / "mixed", modes=("L", "RGB"))
    assert data.info(mixed)["in_chans"] == 3
    # pixel values: class 0 grey levels 0, 10, 20 and class 1 40, 50, 60, standardised together
    vals = np.array([0, 10, 20, 40, 50, 60]) / 255.0
    ref = sorted(((vals - vals.mean()) / vals.std()).round(4).tolist())
    got = data.load(grey, 6)
    assert sorted(got.x[:, 0, 0, 0].double().numpy().round(4).tolist()) == ref


def test_folder_bad_inputs(tmp_path):
    one = tmp_path / "one"
    (one / "only").mkdir(parents=True)
    with pytest.raises(NasntkError, match="at least 2 class"):
        data.load(f"folder:{one}", 1)
    empty = tmp_path / "empty"
    _image_folder(empty)
    (empty / "zebra").mkdir()
    with pytest.raises(NasntkError, match="'zebra' has no image files"):
        data.load(f"folder:{empty}", 2)
    broken = tmp_path / "broken"
    _image_folder(broken)
    (broken / "cat" / "bad.png").write_bytes(b"garbage")
    with pytest.raises(NasntkError, match="cannot read image"):
        data.load(f"folder:{broken}", 2)
    with pytest.raises(NasntkError, match="no such file"):
        data.load(f"folder:{tmp_path / 'absent'}", 2)


# ------------------------------------------------------------------------------------------------
# the shared CIFAR-10 / MNIST files (skipped when absent)
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, file, shape",
    [("cifar10", "cifar10_test.npz", (3, 32)), ("mnist", "mnist_test.npz", (1, 28))],
)
def test_shared_datasets(name, file, shape):
    path = data.shared_dir() / "data" / file
    if not path.exists():
        pytest.skip(f"{path} not present (set NASNTK_SHARED)")
    assert data.info(name) == {
        "in_chans": shape[0],
        "img_size": shape[1],
        "num_classes": 10,
        "size": 10000,
    }
    b = data.load(f"{name}:{path}", 200, seed=1)
    assert b.x.shape == (200, shape[0], shape[1], shape[1]) and _counts(b.y, 10) == [20] * 10
    # the standard constants are the datasets' statistics: a sizeable batch is ~ standardised
    assert abs(float(b.x.mean())) < 0.2 and 0.8 < float(b.x.std()) < 1.2

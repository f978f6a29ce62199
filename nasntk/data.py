"""Image batches for scoring: a source string → a class-balanced, seeded, normalised batch.

Sources (one string each)::

    digits          scikit-learn's bundled 8×8 digits (1,797 images, 10 classes, 17 grey levels
                    0..16); no download. Upsampled to 32×32 unless another size is asked.
    npz:PATH        arrays ``images`` — (N,H,W), (N,H,W,C) or (N,C,H,W) with C ∈ {1, 3}, uint8
                    (0..255) or float — and ``labels`` (N,).
    folder:PATH     one sub-folder per class (sorted names → labels 0..K-1) of image files read
                    with Pillow; greyscale if every image is, RGB otherwise; images of another
                    size than the most common one are resized to it.
    cifar10[:PATH]  the CIFAR-10 test npz (``images`` uint8 N×32×32×3, ``labels``), default
                    ``$NASNTK_SHARED/data/cifar10_test.npz``.
    mnist[:PATH]    the MNIST test npz (``images`` uint8 N×28×28, ``labels``), default
                    ``$NASNTK_SHARED/data/mnist_test.npz``.

Pixels are first mapped to [0, 1] (uint8 / 255, digits / 16, float arrays as they are) and then
standardised per channel, x ← (x − μ_c) / σ_c. CIFAR-10 and MNIST use their standard constants
(μ = (0.4914, 0.4822, 0.4465), σ = (0.2470, 0.2435, 0.2616); μ = 0.1307, σ = 0.3081); every other
source uses the mean and standard deviation of its own pixels. Channel conversion happens before
standardisation: 1 → 3 repeats the grey channel, 3 → 1 takes the luminance
0.299 R + 0.587 G + 0.114 B (its μ, σ are then measured on the source's pixels). Resizing uses
``torch.nn.functional.interpolate`` (bilinear, antialiased, ``align_corners=False``).

Labels are re-indexed to 0..K-1 in the sorted order of their distinct values. Sampling of n
images is class-balanced: each class gets ⌊n/K⌋ images and the remaining n mod K go one each to
the lowest-numbered classes; a class with too few images gives its shortfall, one at a time, to
the next classes (in class order) that have images left. Within a class the images are a seeded
random choice (``numpy.random.default_rng(seed)``) and the batch is returned in a seeded random
order. Decoded arrays are cached per source (and file modification time).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from nasntk.errors import NasntkError

__all__ = ["Batch", "SOURCES", "check_img_size", "info", "load", "shared_dir"]

#: The source kinds :func:`load` understands.
SOURCES = ("digits", "npz", "folder", "cifar10", "mnist")

_CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
_CIFAR10_STD = (0.2470, 0.2435, 0.2616)
_MNIST_MEAN = (0.1307,)
_MNIST_STD = (0.3081,)
_DEFAULT_FILES = {"cifar10": "cifar10_test.npz", "mnist": "mnist_test.npz"}
_LUMA = np.array([0.299, 0.587, 0.114])
_DIGITS_SIZE = 32


@dataclass(frozen=True)
class Batch:
    """A batch of images ready for a model: ``x`` float32 [N,C,H,W] (normalised), ``y`` int64 [N]."""

    x: torch.Tensor
    y: torch.Tensor
    num_classes: int
    source: str

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True)
class _Decoded:
    """A decoded source: ``pixels`` (N,C,H,W) whose values times ``scale`` lie in [0, 1]."""

    pixels: np.ndarray
    scale: float
    labels: np.ndarray  # int64 in 0..K-1
    num_classes: int
    mean: Optional[tuple[float, ...]]  # standard constants, or None: measure on the pixels
    std: Optional[tuple[float, ...]]
    img_size: int  # the default side length of loaded images


def shared_dir() -> Path:
    """The shared data folder: ``$NASNTK_SHARED``, else the ``shared`` folder beside the checkout."""
    env = os.environ.get("NASNTK_SHARED")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared"


# ------------------------------------------------------------------------------------------------
# Source strings
# ------------------------------------------------------------------------------------------------
def _parse(source: str) -> tuple[str, str]:
    if not isinstance(source, str) or not source.strip():
        raise NasntkError("data source must be a non-empty string such as 'digits' or 'npz:PATH'")
    kind, sep, path = source.strip().partition(":")
    kind = kind.lower()
    if kind not in SOURCES:
        raise NasntkError(
            f"unknown data source {source!r}; use one of digits, npz:PATH, folder:PATH, "
            "cifar10[:PATH], mnist[:PATH]"
        )
    if kind == "digits":
        if sep:
            raise NasntkError(f"data source 'digits' takes no path (got {source!r})")
        return kind, ""
    if not path:
        if kind in _DEFAULT_FILES:
            return kind, str(shared_dir() / "data" / _DEFAULT_FILES[kind])
        raise NasntkError(f"data source {kind!r} needs a path: '{kind}:PATH'")
    return kind, os.path.expanduser(path)


def _decode(source: str) -> _Decoded:
    kind, path = _parse(source)
    if kind == "digits":
        return _decode_digits()
    p = Path(path)
    if not p.exists():
        raise NasntkError(f"data source {source!r}: no such file or folder: {path}")
    stamp = p.stat().st_mtime_ns
    if kind == "folder":
        if not p.is_dir():
            raise NasntkError(f"data source {source!r}: {path} is not a folder")
        return _decode_folder(str(p.resolve()), stamp)
    if p.is_dir():
        raise NasntkError(f"data source {source!r}: {path} is a folder, expected an .npz file")
    return _decode_npz(kind, str(p.resolve()), stamp)


# ------------------------------------------------------------------------------------------------
# Decoders (cached)
# ------------------------------------------------------------------------------------------------
def _relabel(labels: np.ndarray, where: str) -> tuple[np.ndarray, int]:
    if labels.ndim != 1:
        raise NasntkError(f"{where}: labels must be one-dimensional, got shape {labels.shape}")
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)) or not np.all(labels == np.round(labels)):
            raise NasntkError(f"{where}: labels must be integers or strings")
    elif labels.dtype.kind not in "iuUSb":
        raise NasntkError(f"{where}: labels must be integers or strings, got dtype {labels.dtype}")
    values, inverse = np.unique(labels, return_inverse=True)
    if len(values) < 2:
        raise NasntkError(f"{where}: needs at least 2 classes, found {len(values)}")
    return inverse.astype(np.int64).reshape(-1), len(values)


@lru_cache(maxsize=1)
def _decode_digits() -> _Decoded:
    from sklearn.datasets import load_digits

    d = load_digits()
    pixels = d.images.astype(np.uint8)[:, None, :, :]  # values 0..16
    labels, k = _relabel(np.asarray(d.target), "digits")
    return _Decoded(pixels, 1.0 / 16.0, labels, k, None, None, _DIGITS_SIZE)


def _to_nchw(images: np.ndarray, where: str) -> np.ndarray:
    if images.ndim == 3:
        return images[:, None, :, :]
    if images.ndim == 4:
        if images.shape[-1] in (1, 3):
            return np.ascontiguousarray(images.transpose(0, 3, 1, 2))
        if images.shape[1] in (1, 3):
            return images
    raise NasntkError(
        f"{where}: images must have shape (N,H,W), (N,H,W,C) or (N,C,H,W) with C in {{1, 3}}, "
        f"got {images.shape}"
    )


@lru_cache(maxsize=8)
def _decode_npz(kind: str, path: str, stamp: int) -> _Decoded:
    where = f"{kind}:{path}"
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("images", "labels") if k not in z.files]
            if missing:
                raise NasntkError(
                    f"{where}: the npz file has no array {missing[0]!r} (has: {', '.join(z.files)})"
                )
            images, labels = z["images"], z["labels"]
    except NasntkError:
        raise
    except Exception as exc:  # zipfile.BadZipFile, ValueError, OSError, EOFError, ...
        raise NasntkError(
            f"{where}: cannot read the file as .npz ({exc.__class__.__name__})"
        ) from None
    pixels = _to_nchw(images, where)
    if len(labels) != len(pixels):
        raise NasntkError(f"{where}: {len(pixels)} images but {len(labels)} labels")
    if pixels.dtype == np.uint8:
        scale = 1.0 / 255.0
    elif pixels.dtype.kind in "fiu":
        pixels = pixels.astype(np.float32)
        if not np.all(np.isfinite(pixels)):
            raise NasntkError(f"{where}: images contain NaN or infinite values")
        scale = 1.0
    else:
        raise NasntkError(f"{where}: images must be uint8 or float, got dtype {pixels.dtype}")
    y, k = _relabel(np.asarray(labels), where)
    mean, std = {
        "cifar10": (_CIFAR10_MEAN, _CIFAR10_STD),
        "mnist": (_MNIST_MEAN, _MNIST_STD),
    }.get(kind, (None, None))
    if mean is not None and len(mean) != pixels.shape[1]:
        raise NasntkError(f"{where}: expected {len(mean)}-channel images, got {pixels.shape[1]}")
    h, w = pixels.shape[-2:]
    return _Decoded(pixels, scale, y, k, mean, std, int(max(h, w)))


@lru_cache(maxsize=8)
def _decode_folder(path: str, stamp: int) -> _Decoded:
    from PIL import Image, UnidentifiedImageError

    where = f"folder:{path}"
    exts = {e.lower() for e in Image.registered_extensions()}
    classes = sorted(d for d in Path(path).iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(classes) < 2:
        raise NasntkError(f"{where}: needs at least 2 class sub-folders, found {len(classes)}")
    files: list[tuple[Path, int]] = []
    for label, d in enumerate(classes):
        found = sorted(
            f
            for f in d.iterdir()
            if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in exts
        )
        if not found:
            raise NasntkError(f"{where}: class folder {d.name!r} has no image files")
        files += [(f, label) for f in found]
    images = []
    for f, _ in files:
        try:
            with Image.open(f) as im:
                im.load()
                images.append(im.copy())
        except (UnidentifiedImageError, OSError, ValueError):
            raise NasntkError(f"{where}: cannot read image {f}") from None
    grey = all(im.mode in ("1", "L", "LA", "I", "I;16", "F") for im in images)
    mode = "L" if grey else "RGB"
    size = Counter(im.size for im in images).most_common(1)[0][0]  # (W, H)
    arrays = []
    for im in images:
        im = im.convert(mode)
        if im.size != size:
            im = im.resize(size, Image.BILINEAR)
        a = np.asarray(im, dtype=np.uint8)
        arrays.append(a[None] if grey else a.transpose(2, 0, 1))
    pixels = np.stack(arrays)
    labels = np.array([label for _, label in files], dtype=np.int64)
    return _Decoded(pixels, 1.0 / 255.0, labels, len(classes), None, None, int(max(size)))


@lru_cache(maxsize=16)
def _channel_stats(source_key: tuple, in_chans: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    dec = _decode(source_key[0])
    x = dec.pixels.astype(np.float64) * dec.scale
    x = _convert_channels_np(x, in_chans)
    mean = x.mean(axis=(0, 2, 3))
    std = x.std(axis=(0, 2, 3))
    std = np.where(std > 0, std, 1.0)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def _convert_channels_np(x: np.ndarray, in_chans: int) -> np.ndarray:
    c = x.shape[1]
    if c == in_chans:
        return x
    if c == 1 and in_chans == 3:
        return np.repeat(x, 3, axis=1)
    if c == 3 and in_chans == 1:
        return np.einsum("nchw,c->nhw", x, _LUMA)[:, None]
    raise NasntkError(f"cannot convert {c}-channel images to {in_chans} channels (only 1 and 3)")


def _stats(
    source: str, dec: _Decoded, in_chans: int
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    c = dec.pixels.shape[1]
    if dec.mean is not None and dec.std is not None:
        if c == in_chans:
            return dec.mean, dec.std
        if c == 1:  # grey repeated to 3 channels keeps its statistics
            return dec.mean * in_chans, dec.std * in_chans
    kind, path = _parse(source)
    stamp = Path(path).stat().st_mtime_ns if path else 0
    return _channel_stats((source, kind, path, stamp), in_chans)


# ------------------------------------------------------------------------------------------------
# Public API
# ------------------------------------------------------------------------------------------------
def info(source: str) -> dict:
    """Shape of a source: ``{"in_chans", "img_size", "num_classes", "size"}``.

    ``in_chans`` and ``img_size`` are what :func:`load` returns by default (the source's own
    channels; its side length, or 32 for ``digits``); ``size`` is the number of images.
    """
    dec = _decode(source)
    return {
        "in_chans": int(dec.pixels.shape[1]),
        "img_size": int(dec.img_size),
        "num_classes": int(dec.num_classes),
        "size": int(len(dec.labels)),
    }


def check_img_size(img_size: object) -> None:
    """``--img-size`` (the side length the images are resized to, and the networks built and
    scored at) is ``None`` (the source's own size) or a positive integer; the one check of
    ``search``, ``score`` and ``benchmark``."""
    if img_size is None:
        return
    if isinstance(img_size, bool) or not isinstance(img_size, (int, np.integer)) or img_size < 1:
        raise NasntkError(f"--img-size must be a positive integer, got {img_size!r}")


def balanced_counts(class_sizes: np.ndarray, n: int) -> np.ndarray:
    """How many images to take per class: ⌊n/K⌋ each, n mod K extra to the lowest classes, and
    the shortfall of small classes handed, one at a time in class order, to classes with spare.
    """
    sizes = np.asarray(class_sizes, dtype=np.int64)
    k = len(sizes)
    counts = np.full(k, n // k, dtype=np.int64)
    counts[: n % k] += 1
    over = np.maximum(counts - sizes, 0)
    counts -= over
    left = int(over.sum())
    while left > 0:
        spare = np.flatnonzero(counts < sizes)
        take = spare[:left]
        counts[take] += 1
        left -= len(take)
    return counts


def load(
    source: str,
    n: int,
    *,
    seed: int = 0,
    in_chans: Optional[int] = None,
    img_size: Optional[int] = None,
) -> Batch:
    """A class-balanced, seeded batch of ``n`` images of ``source`` (see the module docstring).

    ``in_chans`` (1 or 3) and ``img_size`` (square side) default to :func:`info`'s values.
    """
    dec = _decode(source)
    size = len(dec.labels)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise NasntkError(f"number of images must be a positive integer, got {n!r}")
    if n > size:
        raise NasntkError(f"data source {source!r} has {size} images, fewer than the {n} asked")
    c = dec.pixels.shape[1]
    in_chans = c if in_chans is None else int(in_chans)
    if in_chans not in (1, 3):
        raise NasntkError(f"in_chans must be 1 or 3, got {in_chans}")
    img_size = dec.img_size if img_size is None else int(img_size)
    if img_size < 1:
        raise NasntkError(f"img_size must be positive, got {img_size}")

    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(dec.labels == k) for k in range(dec.num_classes)]
    counts = balanced_counts(np.array([len(ix) for ix in by_class]), int(n))
    chosen = [rng.permutation(ix)[:m] for ix, m in zip(by_class, counts, strict=True)]
    idx = rng.permutation(np.concatenate(chosen))

    x = dec.pixels[idx].astype(np.float64) * dec.scale
    x = _convert_channels_np(x, in_chans)
    mean, std = _stats(source, dec, in_chans)
    x = (x - np.asarray(mean)[None, :, None, None]) / np.asarray(std)[None, :, None, None]
    xt = torch.from_numpy(x.astype(np.float32))
    if xt.shape[-2:] != (img_size, img_size):
        xt = F.interpolate(
            xt, size=(img_size, img_size), mode="bilinear", align_corners=False, antialias=True
        )
    y = torch.from_numpy(dec.labels[idx].astype(np.int64))
    return Batch(x=xt.contiguous(), y=y, num_classes=int(dec.num_classes), source=source)

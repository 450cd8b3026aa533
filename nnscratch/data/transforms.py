"""Batch transforms for NCHW images, vectorised over the batch.

Each random transform draws from an explicit ``numpy.random.Generator``, one draw per
image, so the same generator state gives the same result. Crop and flip keep the
input dtype (they only move pixels, so they are cheapest on uint8); colour jitter and
normalisation work in float32 on the [0, 1] scale (uint8 input is divided by 255).
A :class:`Pipeline` chains them and always returns float32 (N, C, H, W).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# A transform maps (batch (N, C, H, W), rng) -> batch (N, C, H, W).
Transform = Callable[[np.ndarray, np.random.Generator], np.ndarray]

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601 grey weights


def _check_batch(batch: np.ndarray, where: str) -> None:
    if not isinstance(batch, np.ndarray) or batch.ndim != 4:
        got = f"shape {batch.shape}" if isinstance(batch, np.ndarray) else type(batch).__name__
        raise ValueError(f"{where}: expected a batch of images (N, C, H, W), got {got}")
    if batch.dtype != np.uint8 and not np.issubdtype(batch.dtype, np.floating):
        raise TypeError(f"{where}: expected uint8 or float images, got {batch.dtype}")


def to_float(batch: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] -> float32 [0, 1]; float input is cast to float32 unchanged."""
    _check_batch(batch, "to_float")
    if batch.dtype == np.uint8:
        return batch.astype(np.float32) * np.float32(1 / 255)
    return batch.astype(np.float32, copy=False)


def random_crop(batch: np.ndarray, rng: np.random.Generator, padding: int = 4) -> np.ndarray:
    """Zero-pad each side by ``padding``, then cut an H x W window at a random offset.

    Each image gets its own offset ``(dy, dx)`` in ``[0, 2 * padding]``, so
    ``out[n] = padded[n, :, dy:dy + H, dx:dx + W]``. Shape and dtype are kept.
    """
    _check_batch(batch, "random_crop")
    if padding < 0:
        raise ValueError(f"random_crop: padding must be >= 0, got {padding}")
    n = len(batch)
    offsets = rng.integers(0, 2 * padding + 1, size=(2, n))  # (2, N): dy, dx
    if padding == 0:
        return batch.copy()
    _, _, h, w = batch.shape
    pad = ((0, 0), (0, 0), (padding, padding), (padding, padding))
    padded = np.pad(batch, pad)  # (N, C, H + 2p, W + 2p)
    windows = sliding_window_view(padded, (h, w), axis=(2, 3))  # (N, C, 2p+1, 2p+1, H, W)
    return windows[np.arange(n), :, offsets[0], offsets[1]]  # (N, C, H, W), a copy


def horizontal_flip(batch: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    """Mirror each image left-right with probability ``p``; shape and dtype are kept."""
    _check_batch(batch, "horizontal_flip")
    flip = rng.random(len(batch)) < p  # (N,)
    out = batch.copy()
    out[flip] = batch[flip, :, :, ::-1]
    return out


def color_jitter(
    batch: np.ndarray,
    rng: np.random.Generator,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.4,
) -> np.ndarray:
    """Random brightness, contrast and saturation, in that order: float32 [0, 1] out.

    Per image, factors ``b, c, s`` are drawn uniformly from ``[1 - x, 1 + x]`` and

        x <- b * x                         (brightness)
        x <- m + c * (x - m)               (contrast; m = the image's mean grey)
        x <- g + s * (x - g)               (saturation; g = each pixel's grey)

    with the result clipped to [0, 1] after each step. Saturation needs 3 channels and
    is skipped for 1-channel images.
    """
    x = to_float(batch)  # (N, C, H, W) float32 in [0, 1]
    n, c = x.shape[:2]
    if c not in (1, 3):
        raise ValueError(f"color_jitter: expected 1 or 3 channels, got shape {x.shape}")
    for name, amount in (
        ("brightness", brightness),
        ("contrast", contrast),
        ("saturation", saturation),
    ):
        if not 0 <= amount <= 1:
            raise ValueError(f"color_jitter: {name} must lie in [0, 1], got {amount}")

    def factor(amount: float) -> np.ndarray:  # (N, 1, 1, 1) float32
        return rng.uniform(1 - amount, 1 + amount, size=(n, 1, 1, 1)).astype(np.float32)

    def grey(images: np.ndarray) -> np.ndarray:  # (N, 1, H, W)
        if images.shape[1] == 1:
            return images
        return np.einsum("nchw,c->nhw", images, _LUMA)[:, None]

    b, k, s = factor(brightness), factor(contrast), factor(saturation)
    x = np.clip(x * b, 0, 1)
    m = grey(x).mean(axis=(1, 2, 3), keepdims=True)  # (N, 1, 1, 1)
    x = np.clip(m + k * (x - m), 0, 1)
    if c == 3:
        g = grey(x)
        x = np.clip(g + s * (x - g), 0, 1)
    return x.astype(np.float32, copy=False)


def normalize(batch: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """``(x - mean[c]) / std[c]`` per channel, float32 out; uint8 input is scaled to [0, 1].

    ``mean`` and ``std`` have one entry per channel, on the [0, 1] scale (as returned
    by :func:`channel_stats`).
    """
    x = to_float(batch)
    mean = np.asarray(mean, dtype=np.float32).reshape(-1)
    std = np.asarray(std, dtype=np.float32).reshape(-1)
    if mean.shape != (x.shape[1],) or std.shape != (x.shape[1],):
        raise ValueError(
            f"normalize: mean and std need {x.shape[1]} entries for {x.shape[1]} channels, "
            f"got {mean.shape[0]} and {std.shape[0]}"
        )
    if np.any(std <= 0):
        raise ValueError(f"normalize: std must be positive, got {std.tolist()}")
    return (x - mean[:, None, None]) / std[:, None, None]  # (N, C, H, W) float32


def channel_stats(images: np.ndarray, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of uint8 images (N, C, H, W) on the [0, 1]
    scale: two float32 arrays (C,). Compute them on the training split only.

    Sums are accumulated in float64 over chunks, so memory stays small.
    """
    _check_batch(images, "channel_stats")
    if len(images) == 0:
        raise ValueError("channel_stats: no images")
    c = images.shape[1]
    total, total_sq = np.zeros(c), np.zeros(c)
    for i in range(0, len(images), chunk):
        x = images[i : i + chunk].astype(np.float64)
        total += x.sum(axis=(0, 2, 3))
        total_sq += np.square(x).sum(axis=(0, 2, 3))
    count = images.size // c
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return (mean / scale).astype(np.float32), (std / scale).astype(np.float32)


@dataclass(frozen=True)
class RandomCrop:
    padding: int = 4

    def __call__(self, batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return random_crop(batch, rng, self.padding)


@dataclass(frozen=True)
class HorizontalFlip:
    p: float = 0.5

    def __call__(self, batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return horizontal_flip(batch, rng, self.p)


@dataclass(frozen=True)
class ColorJitter:
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4

    def __call__(self, batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return color_jitter(batch, rng, self.brightness, self.contrast, self.saturation)


@dataclass(frozen=True)
class Normalize:
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __call__(self, batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return normalize(batch, self.mean, self.std)


class Pipeline:
    """Apply transforms in order: uint8 or float (N, C, H, W) -> float32 (N, C, H, W).

    Each step is any callable ``(batch, rng) -> batch``; all steps share the one
    generator passed to the call. If the last step leaves uint8, the result is scaled
    to [0, 1] float32. Build the usual ones with :meth:`from_options`.
    """

    def __init__(self, steps: Sequence[Transform] = ()):
        self.steps = tuple(steps)

    @classmethod
    def from_options(
        cls,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        crop: int = 0,
        flip: bool = False,
        jitter: float | tuple[float, float, float] = 0.0,
    ) -> Pipeline:
        """Crop (``crop`` = padding, 0 = off), flip, jitter (one amount for brightness,
        contrast and saturation, or a triple), then normalise (if ``mean``/``std``).

        ``Pipeline.from_options(mean, std)`` is the evaluation transform;
        ``Pipeline.from_options(mean, std, crop=4, flip=True)`` the usual CIFAR training one.
        """
        steps: list[Transform] = []
        if crop:
            steps.append(RandomCrop(crop))
        if flip:
            steps.append(HorizontalFlip())
        amounts = (jitter,) * 3 if np.isscalar(jitter) else tuple(jitter)
        if any(amounts):
            steps.append(ColorJitter(*amounts))
        if (mean is None) != (std is None):
            raise ValueError("Pipeline.from_options: give both mean and std, or neither")
        if mean is not None:
            steps.append(Normalize(tuple(map(float, mean)), tuple(map(float, std))))
        return cls(steps)

    def __call__(self, batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for step in self.steps:
            batch = step(batch, rng)
        return to_float(batch)

    def __repr__(self) -> str:
        return f"Pipeline({list(self.steps)!r})"

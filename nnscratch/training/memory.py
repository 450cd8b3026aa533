"""How much memory a model or a run needs, estimated before anything large is allocated.

A width, an image size or a checkpoint's config can ask for more memory than the machine
has (``--width 100`` is 110 G parameters); building such a model would end in a
``MemoryError`` after minutes, or in the kernel's out-of-memory killer. These estimates
cost milliseconds: the model is built at small widths whose channel counts are exact
(1/16, 1/8, 1/4 of the base), where the parameter count is exactly a quadratic in the
width (convolutions grow with width², batch norm and the head with width), and one
small image is traced through the width-1/4 model for the activation sizes, which grow
linearly with the width and the image area.

A training step keeps about one copy of every layer's output for the backward pass and
holds the weights, their gradients and up to two optimizer states (Adam). For ResNet-18
(CIFAR stem) the estimate is 1.2-1.8 times the measured peak, so it refuses only runs
that cannot fit.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

from nnscratch import models
from nnscratch.models.classifier import check_model_arguments
from nnscratch.nn.grad_mode import no_grad
from nnscratch.nn.module import trace_calls

_EXACT_WIDTHS = (1 / 16, 1 / 8, 1 / 4)  # every base channel count times these is whole
_TRACE_SIZE = 32  # activations are traced on images of at most 32 x 32 and scaled by area
_TRAIN_COPIES_OF_WEIGHTS = 4  # weights, gradients, two optimizer states
_TRAIN_COPIES_OF_ACTIVATIONS = 1  # the outputs kept for backward (gradients are transient)
_GIB = 1 << 30


@dataclasses.dataclass(frozen=True)
class Footprint:
    """Sizes of a model, in elements: parameters, and per image the layer outputs."""

    parameters: int
    activations_per_image: int  # sum over the leaf layers' outputs
    largest_activation_per_image: int

    def training_bytes(self, batch_size: int, itemsize: int = 4) -> int:
        return itemsize * (
            _TRAIN_COPIES_OF_WEIGHTS * self.parameters
            + _TRAIN_COPIES_OF_ACTIVATIONS * batch_size * self.activations_per_image
        )

    def inference_bytes(self, batch_size: int, itemsize: int = 4) -> int:
        return itemsize * (self.parameters + 3 * batch_size * self.largest_activation_per_image)


def footprint(name: str, image_shape: tuple[int, int, int], **model_kwargs: Any) -> Footprint:
    """Estimate the sizes of ``models.create(name, **model_kwargs)`` on images (C, H, W)."""
    width = model_kwargs.pop("width", 1.0)
    check_model_arguments(
        model_kwargs.get("num_classes", 1), model_kwargs.get("in_channels", 1), width
    )
    counts = [models.create(name, width=w, **model_kwargs).num_parameters() for w in _EXACT_WIDTHS]
    quadratic = np.polyfit(_EXACT_WIDTHS, counts, 2)
    parameters = max(round(float(np.polyval(quadratic, width))), 1)

    channels, H, W = image_shape
    h, w = min(H, _TRACE_SIZE), min(W, _TRACE_SIZE)
    small = models.create(name, width=_EXACT_WIDTHS[-1], **model_kwargs).eval()
    with no_grad(), trace_calls() as calls:
        small(np.zeros((1, channels, h, w), dtype=np.float32))
    leaf_sizes = [int(np.prod(shape)) for module, shape in calls if not module._modules]
    scale = (width / _EXACT_WIDTHS[-1]) * (H * W) / (h * w)
    return Footprint(
        parameters, int(sum(leaf_sizes) * scale), int(max(leaf_sizes, default=0) * scale)
    )


def available_bytes() -> int:
    """Memory the system can give this process now (``MemAvailable``; else all of RAM)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_fits(needed: int, what: str, advice: str) -> None:
    """Raise ``MemoryError`` with one clear sentence if ``needed`` bytes are not available."""
    available = available_bytes()
    if needed > available:
        raise MemoryError(
            f"{what} needs about {needed / _GIB:.1f} GiB of memory but {available / _GIB:.1f} GiB "
            f"is available; {advice}"
        )

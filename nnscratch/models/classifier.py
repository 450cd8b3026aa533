"""What every image classifier here shares: a chain of stages ending in a linear head.

Forward runs the stages in order; backward runs them in reverse. On top of that:
``features(x)`` (the pooled embedding), ``summary(input_shape)`` (a table of output
shapes and parameter counts), ``replace_head`` and ``freeze_backbone`` for transfer
learning.
"""

from __future__ import annotations

import math

import numpy as np

from nnscratch.nn import init
from nnscratch.nn.activation import ReLU
from nnscratch.nn.batch_norm import BatchNorm2d
from nnscratch.nn.container import Identity
from nnscratch.nn.conv import Conv2d
from nnscratch.nn.fusion import sequence
from nnscratch.nn.grad_mode import no_grad
from nnscratch.nn.linear import Linear
from nnscratch.nn.module import Module, trace_calls
from nnscratch.nn.residual import ResidualBlock


def check_model_arguments(num_classes: int, in_channels: int, width: float) -> None:
    """Refuse sizes no network can have, naming the argument."""
    for name, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not (isinstance(width, (int, float)) and math.isfinite(width) and width > 0):
        raise ValueError(f"width must be a finite number above 0, got {width!r}")


class ImageClassifier(Module):
    """Base class: subclasses set the layers and list them in :meth:`backbone`; ``fc`` is the head."""

    fc: Linear

    def backbone(self) -> list[Module]:
        """Stages from the image to the pooled (N, C, 1, 1) map, in forward order."""
        raise NotImplementedError

    def _stages(self) -> list[Module]:
        return [*self.backbone(), self.flatten, self.fc]

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Logits (N, num_classes) for images x (N, in_channels, H, W)."""
        return sequence(self._stages(), x)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dL/dx (N, in_channels, H, W) from dL/dlogits (N, num_classes)."""
        for stage in reversed(self._stages()):
            dy = stage.backward(dy)
        return dy

    def features(self, x: np.ndarray) -> np.ndarray:
        """The pooled embedding (N, fc.in_features) that the head classifies."""
        return sequence([*self.backbone(), self.flatten], x)

    def init_conv_weights(self, scheme: str, rng: np.random.Generator) -> None:
        """Re-draw every convolution's weight with ``scheme`` (he, xavier or torch), in place."""
        convs = (m.weight.data for m in self.modules() if isinstance(m, Conv2d))
        init.redraw_conv_weights(convs, scheme, rng)

    def add_pre_activation_ends(self, channels: int, batch_norm: bool) -> None:
        """What a pre-activation net adds at its ends (He et al. 2016): its first block
        shares its BN-ReLU with its shortcut, and the last sum, ``channels`` wide, is
        activated by ``final_bn -> final_relu`` before the pooling."""
        self.layer1[0].shared_activation = True
        self.final_bn = BatchNorm2d(channels) if batch_norm else Identity()
        self.final_relu = ReLU()

    def zero_init_branches(self) -> None:
        """Start every residual block as its shortcut (``zero_init_residual``)."""
        for module in self.modules():
            if isinstance(module, ResidualBlock):
                module.zero_init_branch()

    @property
    def num_classes(self) -> int:
        return self.fc.out_features

    def replace_head(self, num_classes: int, rng: np.random.Generator | None = None) -> None:
        """A new, freshly initialised ``fc`` with ``num_classes`` outputs (same dtype)."""
        dtype = self.fc.weight.dtype
        self.fc = Linear(self.fc.in_features, num_classes, rng=rng, dtype=dtype)

    def freeze_backbone(self, frozen: bool = True) -> None:
        """Freeze (or unfreeze) every parameter except the head's.

        Frozen parameters get no gradient and no optimizer update, and a frozen backbone
        stays in eval mode even under ``train()``, so its batch-norm statistics are fixed
        too: the backbone is then a fixed feature extractor.
        """
        self.requires_grad_(not frozen)
        self.fc.requires_grad_(True)
        object.__setattr__(self, "backbone_frozen", frozen)
        self.train(self.training)

    def train(self, mode: bool = True) -> ImageClassifier:
        super().train(mode)
        if mode and getattr(self, "backbone_frozen", False):
            for stage in self.backbone():
                stage.eval()
        return self

    def summary(self, input_shape: tuple[int, ...], depth: int = 2, file=None) -> list[dict]:
        """Run one image of ``input_shape`` (C, H, W) and list each module's output shape.

        Returns rows ``{"name", "type", "output_shape", "params"}`` for modules at most
        ``depth`` levels deep and prints them as a table (to ``file`` if given, else stdout).
        """
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        names = {id(m): name for name, m in self.named_modules()}
        dtype = next(iter(self.parameters())).dtype
        was_training = self.training
        self.eval()
        try:
            with no_grad(), trace_calls() as calls:
                self.forward(np.zeros((1, *input_shape), dtype=dtype))
        finally:
            self.train(was_training)
        rows = []
        for module, shape in calls:
            name = names.get(id(module), "")
            if 0 < name.count(".") + 1 <= depth:
                params = sum(p.size for p in module.parameters())
                rows.append(
                    {
                        "name": name,
                        "type": type(module).__name__,
                        "output_shape": shape[1:],
                        "params": params,
                    }
                )
        _print_table(rows, self.num_parameters(), self.num_parameters(trainable_only=True), file)
        return rows


def _print_table(rows: list[dict], total: int, trainable: int, file) -> None:
    width = max(len(r["name"]) + 2 * r["name"].count(".") for r in rows) + 2
    lines = [f"{'layer':<{width}}{'type':<20}{'output shape':<20}{'params':>12}"]
    lines.append("-" * len(lines[0]))
    for r in rows:
        indent = "  " * r["name"].count(".")
        shape = " x ".join(str(s) for s in r["output_shape"])
        lines.append(f"{indent + r['name']:<{width}}{r['type']:<20}{shape:<20}{r['params']:>12,}")
    lines.append("-" * len(lines[0]))
    lines.append(f"total parameters: {total:,} (trainable: {trainable:,})")
    print("\n".join(lines), file=file)

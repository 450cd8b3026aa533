"""The parts of a built network an experiment measures: its convs, its blocks, its depth,
and the output of each block."""

from __future__ import annotations

import numpy as np

from nnscratch.models.classifier import ImageClassifier
from nnscratch.nn.container import Sequential
from nnscratch.nn.conv import Conv2d
from nnscratch.nn.module import Module
from nnscratch.nn.residual import ResidualBlock


def conv_layers(model: Module) -> list[tuple[str, Conv2d, bool]]:
    """Every conv as ``(name, module, on_shortcut)`` in forward order of the main path.

    Registration order is forward order in these models (stem, then each block's conv1,
    conv2, ...); a projection shortcut's conv (``...downsample.0``) is flagged True.
    """
    return [
        (name, m, ".downsample" in name)
        for name, m in model.named_modules()
        if isinstance(m, Conv2d)
    ]


def residual_blocks(model: Module) -> list[tuple[str, ResidualBlock]]:
    """Every residual (or plain) block with its dotted name, in forward order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, ResidualBlock)]


def weighted_depth(model: Module) -> int:
    """Convs on the main path plus the head: 20 for ResNet-20, 18 for ResNet-18."""
    return sum(not shortcut for _, _, shortcut in conv_layers(model)) + 1


def forward_with_block_outputs(
    model: ImageClassifier, x: np.ndarray
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Logits, and the output of every residual block in forward order.

    Runs exactly what ``model.forward`` runs (backbone stages, flatten, head), stepping
    into each ``Sequential`` of blocks so each block's output can be kept; the caches
    are the same, so ``model.backward`` works afterwards.
    """
    outputs = []
    for stage in [*model.backbone(), model.flatten, model.fc]:
        if isinstance(stage, Sequential):
            for module in stage:
                x = module(x)
                if isinstance(module, ResidualBlock):
                    outputs.append(x)
        else:
            x = stage(x)
    return x, outputs

"""Running a chain of layers, and what inference fuses in it.

    sequence(layers, x)                     = layers[-1]( ... layers[0](x))
    sequence(layers, x, plus=s, then=relu)  = relu(layers(x) + s)     (a residual block's end)

In inference, under ``no_grad()`` (no backward pass will need the layers' caches), a
``Conv2d`` without bias followed by a ``BatchNorm2d`` in eval mode runs as one op,
:func:`nnscratch.functional.conv2d_bn_inference`, together with the ``ReLU`` after them,
or, at the end of the chain, the ``+ s`` and the ``then`` ReLU. Batch norm with fixed
statistics is a per-channel affine map, so the fast tier applies it, the sum and the
ReLU to each block of the convolution's output while it is in cache, not in three more
passes over memory. The results are the same, bit for bit, as layer by layer; inside
``trace_calls()`` (``summary``) every layer still runs on its own.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from nnscratch.functional.backend import backend
from nnscratch.nn.activation import ReLU
from nnscratch.nn.batch_norm import BatchNorm2d
from nnscratch.nn.conv import Conv2d
from nnscratch.nn.grad_mode import is_grad_enabled
from nnscratch.nn.module import Module, errors_named_after, tracing_calls


def sequence(
    layers: Iterable[Module],
    x: np.ndarray,
    plus: np.ndarray | None = None,
    then: Module | None = None,
) -> np.ndarray:
    """``then(layers(x) + plus)``: each layer in order, then the sum (if ``plus`` is given)
    and ``then`` (if given); fused where the module docstring says."""
    layers = list(layers)
    if is_grad_enabled() or tracing_calls():
        for layer in layers:
            x = layer(x)
    else:
        x, plus, then = _fused(layers, x, plus, then)
    if plus is not None:
        x = x + plus
    return then(x) if then is not None else x


def _foldable(conv: Module, bn: Module | None) -> bool:
    """A bias-free convolution whose output an eval-mode batch norm normalises."""
    return (
        type(conv) is Conv2d and conv.bias is None and type(bn) is BatchNorm2d and not bn.training
    )


def _fused(layers: list[Module], x: np.ndarray, plus, then):
    """Run ``layers`` with each conv -> batch norm [-> ReLU] as one op; returns the output
    and what is left of ``plus`` and ``then`` (None once a fused op took it)."""
    i = 0
    while i < len(layers):
        layer, following = layers[i], layers[i + 1] if i + 1 < len(layers) else None
        if not _foldable(layer, following):
            x = layer(x)
            i += 1
            continue
        i += 2
        last = i == len(layers)
        add = plus if last else None
        after = then if last else layers[i]
        relu = type(after) is ReLU
        if last:
            plus, then = None, (None if relu else then)
        elif relu:
            i += 1
        x = _conv_bn(layer, following, x, add, relu)
    return x, plus, then


def _conv_bn(conv: Conv2d, bn: BatchNorm2d, x, plus, relu: bool) -> np.ndarray:
    with errors_named_after(conv):
        return backend().conv2d_bn_inference(
            x,
            conv.weight.data,
            bn.weight.data,
            bn.bias.data,
            bn.running_mean,
            bn.running_var,
            stride=conv.stride,
            padding=conv.padding,
            eps=bn.eps,
            plus=plus,
            relu=relu,
        )

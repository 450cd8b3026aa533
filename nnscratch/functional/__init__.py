"""Stateless ops as forward/backward pairs: ``y, cache = op_forward(...)``,
``dx, *dparams = op_backward(dy, cache)``.

These are the readable tier: plain NumPy, one file per op family, each opening with
its math. ``nnscratch.functional.fast`` has faster versions of some of them with the
same signatures; :mod:`.backend` says which one the layers run.
"""

from nnscratch.functional.activation import relu_backward, relu_forward
from nnscratch.functional.batch_norm import batch_norm2d_backward, batch_norm2d_forward
from nnscratch.functional.conv import (
    col2im,
    conv2d_backward,
    conv2d_forward,
    conv2d_naive_backward,
    conv2d_naive_forward,
    im2col,
)
from nnscratch.functional.conv_bn import conv2d_bn_inference
from nnscratch.functional.linear import linear_backward, linear_forward
from nnscratch.functional.loss import (
    bce_with_logits_backward,
    bce_with_logits_forward,
    cross_entropy_backward,
    cross_entropy_forward,
)
from nnscratch.functional.pooling import (
    global_avg_pool2d_backward,
    global_avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)
from nnscratch.functional.residual import residual_backward
from nnscratch.functional.smooth_activation import (
    sigmoid_backward,
    sigmoid_forward,
    tanh_backward,
    tanh_forward,
)

__all__ = [
    "batch_norm2d_backward",
    "batch_norm2d_forward",
    "bce_with_logits_backward",
    "bce_with_logits_forward",
    "col2im",
    "conv2d_backward",
    "conv2d_bn_inference",
    "conv2d_forward",
    "conv2d_naive_backward",
    "conv2d_naive_forward",
    "cross_entropy_backward",
    "cross_entropy_forward",
    "global_avg_pool2d_backward",
    "global_avg_pool2d_forward",
    "im2col",
    "linear_backward",
    "linear_forward",
    "max_pool2d_backward",
    "max_pool2d_forward",
    "relu_backward",
    "relu_forward",
    "residual_backward",
    "sigmoid_backward",
    "sigmoid_forward",
    "tanh_backward",
    "tanh_forward",
]

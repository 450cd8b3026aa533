"""The fast tier: every op of ``nnscratch.functional``, the slow ones made fast.

Conv2d, batch norm, ReLU (also inside the residual `+`'s backward), max pooling and inference's fused conv + batch norm have fast
versions here: same names, signatures, caches and results (float64 to 1e-12, float32 to
1e-5 relative, tested); numba kernels that release the GIL, one share of the batch per
core (:mod:`.workers`), chunks that stay in cache and reused scratch buffers. The other
ops take little of a step's time, so this tier re-exports the readable ones. The layers
use this tier unless ``nnscratch.reference_mode()`` is on
(:mod:`nnscratch.functional.backend`), after calling :func:`setup` once.
"""

from nnscratch.functional.fast.activation import relu_backward, relu_forward
from nnscratch.functional.fast.allocator import keep_freed_memory
from nnscratch.functional.fast.batch_norm import batch_norm2d_backward, batch_norm2d_forward
from nnscratch.functional.fast.conv import conv2d_backward, conv2d_forward
from nnscratch.functional.fast.conv_bn import conv2d_bn_inference
from nnscratch.functional.fast.pooling import max_pool2d_backward, max_pool2d_forward
from nnscratch.functional.fast.residual import residual_backward

# No fast version: these are the readable ops themselves.
from nnscratch.functional.linear import linear_backward, linear_forward
from nnscratch.functional.loss import (
    bce_with_logits_backward,
    bce_with_logits_forward,
    cross_entropy_backward,
    cross_entropy_forward,
)
from nnscratch.functional.pooling import global_avg_pool2d_backward, global_avg_pool2d_forward
from nnscratch.functional.smooth_activation import (
    sigmoid_backward,
    sigmoid_forward,
    tanh_backward,
    tanh_forward,
)


def setup() -> None:
    """Set the process up for the fast tier, once: keep freed memory for the next step's
    arrays (:mod:`.allocator`; a bad ``NNSCRATCH_KEEP_FREED_MEMORY`` raises here)."""
    keep_freed_memory()


__all__ = [
    "batch_norm2d_backward",
    "batch_norm2d_forward",
    "bce_with_logits_backward",
    "bce_with_logits_forward",
    "conv2d_backward",
    "conv2d_bn_inference",
    "conv2d_forward",
    "cross_entropy_backward",
    "cross_entropy_forward",
    "global_avg_pool2d_backward",
    "global_avg_pool2d_forward",
    "linear_backward",
    "linear_forward",
    "max_pool2d_backward",
    "max_pool2d_forward",
    "relu_backward",
    "relu_forward",
    "residual_backward",
    "setup",
    "sigmoid_backward",
    "sigmoid_forward",
    "tanh_backward",
    "tanh_forward",
]

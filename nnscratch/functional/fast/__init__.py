"""The fast tier: the ops of ``nnscratch.functional`` that have a faster version.

Same names, signatures, caches and results (float64 to 1e-12, float32 to 1e-5 relative,
tested); numba kernels that release the GIL, one share of the batch per core
(:mod:`.workers`), chunks that stay in cache and reused scratch buffers. The layers
use these unless ``nnscratch.reference_mode()`` is on; the first time they do, freed
memory starts being kept for the next step's arrays (:mod:`.allocator`).
"""

from nnscratch.functional.fast.activation import relu_backward, relu_forward
from nnscratch.functional.fast.batch_norm import batch_norm2d_backward, batch_norm2d_forward
from nnscratch.functional.fast.conv import conv2d_backward, conv2d_forward
from nnscratch.functional.fast.conv_bn import conv2d_bn_inference
from nnscratch.functional.fast.pooling import max_pool2d_backward, max_pool2d_forward

__all__ = [
    "batch_norm2d_backward",
    "batch_norm2d_forward",
    "conv2d_backward",
    "conv2d_bn_inference",
    "conv2d_forward",
    "max_pool2d_backward",
    "max_pool2d_forward",
    "relu_backward",
    "relu_forward",
]

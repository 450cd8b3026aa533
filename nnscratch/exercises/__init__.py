"""Checkable exercises: write a layer's forward or backward yourself, then ``check`` it.

    from nnscratch import exercises
    print(exercises.describe("relu_backward"))      # what to write, shapes, conventions
    exercises.check("relu_backward", my_relu_backward)

A check runs your code on several cases (batch 1, odd sizes, stride 2, ties, ...),
compares every output with the library's reference and, for gradients, with central
finite differences, and recognises the common mistakes: the message names the output,
the case, the worst entry and, when your result matches a known mistake, what went wrong.

Once your layer pieces pass, ``with exercises.my_tier(yours):`` makes every layer run them
(:mod:`.my_tier`; ``yours``: a dict, your files or the lessons' notebooks you wrote them
in), so a whole ResNet trains on your code.
"""

from __future__ import annotations

from typing import Any

from nnscratch.exercises import progress
from nnscratch.exercises.batch_norm import BATCH_NORM_BACKWARD, BATCH_NORM_FORWARD
from nnscratch.exercises.checking import CheckResult, Exercise, run_check
from nnscratch.exercises.conv import CONV2D_BACKWARD, CONV2D_FORWARD
from nnscratch.exercises.im2col import COL2IM, IM2COL
from nnscratch.exercises.init import HE_STD
from nnscratch.exercises.linear import LINEAR
from nnscratch.exercises.loss import CROSS_ENTROPY
from nnscratch.exercises.my_tier import MyTier, PieceRefused, load_solutions, my_tier
from nnscratch.exercises.optim import SGD_MOMENTUM_STEP
from nnscratch.exercises.paths import PATH_LENGTH_COUNTS, ROUTED_GRADIENT
from nnscratch.exercises.pca import PCA_2D
from nnscratch.exercises.pooling import GLOBAL_AVG_POOL_BACKWARD, MAX_POOL_BACKWARD
from nnscratch.exercises.preact import PREACT_RESIDUAL_BACKWARD, UNROLLED_GRADIENT
from nnscratch.exercises.questions import BASIC_BLOCK_PARAMS, ONE_LAYER_GAIN
from nnscratch.exercises.relu import RELU_BACKWARD
from nnscratch.exercises.residual import RESIDUAL_BACKWARD
from nnscratch.exercises.shattered import AUTOCORRELATION

_TEACHING_ORDER = (
    LINEAR,
    RELU_BACKWARD,
    IM2COL,
    COL2IM,
    CONV2D_FORWARD,
    CONV2D_BACKWARD,
    MAX_POOL_BACKWARD,
    GLOBAL_AVG_POOL_BACKWARD,
    BATCH_NORM_FORWARD,
    BATCH_NORM_BACKWARD,
    CROSS_ENTROPY,
    RESIDUAL_BACKWARD,
    PREACT_RESIDUAL_BACKWARD,
    UNROLLED_GRADIENT,
    SGD_MOMENTUM_STEP,
    HE_STD,
    ONE_LAYER_GAIN,
    BASIC_BLOCK_PARAMS,
    PCA_2D,
    PATH_LENGTH_COUNTS,
    ROUTED_GRADIENT,
    AUTOCORRELATION,
)
_EXERCISES: dict[str, Exercise] = {e.name: e for e in _TEACHING_ORDER}
# The lesson (notebook) of each exercise, in the order its cells ask for them.
LESSONS: dict[str, tuple[str, ...]] = {
    "01_layers_and_backprop": (
        "im2col",
        "conv2d_forward",
        "col2im",
        "conv2d_backward",
        "linear",
        "relu_backward",
    ),
    "02_batch_norm_and_pooling": (
        "batch_norm_backward",
        "batch_norm_forward",
        "max_pool_backward",
        "global_avg_pool_backward",
    ),
    "03_residual_block": ("residual_backward", "basic_block_params"),
    "04_gradient_flow": ("one_layer_gain", "he_std"),
    "05_training_resnet18": ("cross_entropy", "sgd_momentum_step"),
    "07_features_and_transfer": ("pca_2d",),
    "08_identity_mappings": ("preact_residual_backward", "unrolled_gradient"),
    "09_paths_and_shattered_gradients": (
        "path_length_counts",
        "routed_gradient",
        "autocorrelation",
    ),
}

__all__ = [
    "LESSONS",
    "CheckResult",
    "MyTier",
    "PieceRefused",
    "check",
    "describe",
    "load_solutions",
    "my_tier",
    "names",
    "reference",
]


def _exercise(name: str) -> Exercise:
    if name not in _EXERCISES:
        raise KeyError(f"no exercise named {name!r}; the exercises are: {', '.join(names())}")
    return _EXERCISES[name]


def names() -> list[str]:
    """The exercise names, in teaching order."""
    return list(_EXERCISES)


def describe(name: str) -> str:
    """What to write for exercise ``name``: the signature, the shapes, the cache, the conventions."""
    return _exercise(name).describe()


def reference(name: str) -> Any:
    """The library's own solution, with the exercise's signature (a number for a question)."""
    return _exercise(name).reference


def check(name: str, submission: Any) -> CheckResult:
    """Check your function (a pair of functions, or a number, as ``describe(name)`` says);
    the outcome is kept in your progress file (:mod:`.progress`)."""
    result = run_check(_exercise(name), submission)
    progress.record(name, result.passed)
    return result

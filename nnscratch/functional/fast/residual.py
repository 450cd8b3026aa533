"""The residual `+`'s backward (:mod:`nnscratch.functional.residual`) on the fast ReLU."""

from __future__ import annotations

import functools

from nnscratch.functional.fast.activation import relu_backward
from nnscratch.functional.residual import residual_backward as readable_residual_backward

residual_backward = functools.partial(readable_residual_backward, relu_backward=relu_backward)

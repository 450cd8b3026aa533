"""The backward pass of a residual block's `+`: a fan-out and a sum.

Forward:   out = relu(main(x) + shortcut(x))    (or main(x) + shortcut(x): pre-activation)
Backward:  d  = dy * [out > 0]                  (relu'(0) = 0; d = dy without the ReLU)
           dx = main_backward(d) + shortcut_backward(d)
The `+` sends the same d into both branches, and x's gradient is the sum of what each
branch gives back: that sum is why the gradient reaches early layers through a deep net.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from nnscratch.functional.activation import relu_backward as readable_relu_backward


def residual_backward(
    dy: np.ndarray,
    out: np.ndarray | None,
    main_backward: Callable[[np.ndarray], np.ndarray],
    shortcut_backward: Callable[[np.ndarray], np.ndarray],
    relu_backward: Callable = readable_relu_backward,
) -> np.ndarray:
    """dx (x's shape) from dy (out's shape); ``out`` is the ReLU's cache, its output
    (None: nothing after the `+`); each ``*_backward`` maps d at the `+` to its branch's dx.
    ``relu_backward``: the tier's ReLU backward (the fast tier passes its own)."""
    d = dy if out is None else relu_backward(dy, out)
    return main_backward(d) + shortcut_backward(d)

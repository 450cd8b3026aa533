"""A Frobenius norm that does not underflow for tiny float32 gradients."""

from __future__ import annotations

import numpy as np


def frobenius_norm(a: np.ndarray) -> float:
    """sqrt(sum a^2), computed in float64 and scaled by max|a|.

    ``np.linalg.norm`` squares in the array's own dtype: for float32 entries below about
    1e-19 the squares underflow and the norm of a non-zero gradient comes out exactly 0.
    """
    a = np.asarray(a, dtype=np.float64)
    scale = float(np.max(np.abs(a), initial=0.0))
    return 0.0 if scale == 0.0 else scale * float(np.linalg.norm(a / scale))

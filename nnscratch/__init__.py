"""nnscratch: a from-scratch NumPy ResNet with hand-written backward passes."""

import os

# OpenBLAS keeps a worker thread spinning after each matrix product, and it then competes
# with the copy kernels that run between products (measured: 25-28 -> 34.5 training
# images/s for ResNet-18). A short timeout lets it sleep. This must be set before NumPy
# loads OpenBLAS, so it takes effect when nnscratch is imported first; a value the user
# set wins.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from nnscratch.functional.backend import reference_mode

__all__ = ["reference_mode"]

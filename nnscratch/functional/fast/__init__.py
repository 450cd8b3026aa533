"""The fast tier: the same ops as ``nnscratch.functional``, as numba kernels split across cores."""

"""Small helpers shared by the other packages: atomic file writes, a restricted unpickler
and an underflow-free Frobenius norm."""

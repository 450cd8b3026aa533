"""Small helpers shared by io and data: atomic file writes and a restricted unpickler."""

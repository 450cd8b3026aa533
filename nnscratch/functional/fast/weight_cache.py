"""Arrays derived from a weight, computed once while the weight keeps its values.

Winograd's transformed weight U is needed by a training step's forward pass and again by
its backward pass, and by every inference call; computing it takes a pass over 16 / 9 of
the weight's size each time (16 ms of a ResNet-18 inference pass). Here it is computed
once per value of the weight: an entry is keyed by the weight array's identity and
checked against a 128-bit hash of its bytes (xxh3: 0.15 ms for ResNet-18's largest
weight, 9.4 MB), so a weight changed in place by an optimizer step, ``load_state_dict``
or any assignment gets a new U on its next use. An entry goes away with its weight
array, and a cached array is read-only.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import numpy as np
import xxhash

# (id(w), name) -> (a weak reference to w, what w was: hash, shape, dtype; the value)
_entries: dict[tuple[int, str], tuple[weakref.ref, tuple, np.ndarray]] = {}


def derived(w: np.ndarray, name: str, compute: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``compute(w)``, or the value it returned last for this array ``w`` if w's bytes,
    shape and dtype are unchanged since; ``name`` tells apart what is derived."""
    key = (id(w), name)
    state = (xxhash.xxh3_128_intdigest(np.ascontiguousarray(w)), w.shape, w.dtype.str)
    entry = _entries.get(key)
    if entry is not None and entry[0]() is w and entry[1] == state:
        return entry[2]
    value = compute(w)
    value.flags.writeable = False
    _entries[key] = (weakref.ref(w, lambda _, key=key: _entries.pop(key, None)), state, value)
    return value

"""Keep freed arrays' memory in the process for the next step's arrays (glibc only).

Every layer returns new arrays, and a training step frees them all again. With glibc's
defaults, arrays from 128 kB up (a threshold that rises as they are freed) get memory
mapped fresh from the kernel and unmapped when freed, and trimmed heap memory is
returned too, so each step touches new pages: a page fault per 4 kB on first write.
ResNet-18 took 5,600 (quarter width, batch 128) and 8,900 (full width, batch 64) of
them per training step, 6-7% of its time on a 2-core virtual machine.

Setting glibc's ``M_MMAP_THRESHOLD`` to its maximum (32 MB: larger arrays are still
mapped) and ``M_TRIM_THRESHOLD`` to 1 GB keeps the freed memory in the heap, where the
next step's arrays of the same sizes find it. The peak memory is the same; the process
just keeps it between steps. It applies to the whole process (NumPy's other arrays
too), so ``NNSCRATCH_KEEP_FREED_MEMORY=0`` leaves glibc's defaults alone. It is done
when the layers first use the fast tier (:func:`nnscratch.functional.fast.setup`), not on
import: a bad setting is then a ``ValueError`` where the command-line reports it.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform

M_TRIM_THRESHOLD = -1  # mallopt parameter numbers, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 << 20  # glibc's limit on 64-bit systems
TRIM_THRESHOLD = 1 << 30


@functools.cache
def keep_freed_memory() -> bool:
    """Set the two thresholds above, once per process (an invalid setting raises every
    time); False where it does not apply (not glibc, or ``NNSCRATCH_KEEP_FREED_MEMORY=0``)
    or glibc refused."""
    setting = os.environ.get("NNSCRATCH_KEEP_FREED_MEMORY", "1").strip()
    if setting not in ("0", "1"):
        raise ValueError(f"NNSCRATCH_KEEP_FREED_MEMORY must be 0 or 1, got {setting!r}")
    if setting == "0" or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )

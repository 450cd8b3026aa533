"""What a process measures of itself: the seconds of a step, its resident and peak memory
(Linux ``/proc``), its thread pools, and the machine it runs on."""

from __future__ import annotations

import os
import platform
import time

MEMORY_METHOD = (
    "peak resident set size of the worker during the timed training steps (Linux VmHWM, "
    "reset before them) minus its resident size after imports, model, optimizer and batch"
)


def timed(step) -> float:
    """Seconds that ``step()`` takes."""
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _status_bytes(field: str) -> int:
    """A /proc/self/status size (VmRSS, VmHWM) in bytes; the peak RSS where there is none."""
    kib = _status_kib(field)
    if kib is None:
        import resource

        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib * 1024


def rss_bytes() -> int:
    """The resident set size now."""
    return _status_bytes("VmRSS")


def peak_bytes() -> int:
    """The peak resident set size since the start or the last :func:`reset_peak`."""
    return _status_bytes("VmHWM")


def can_reset_peak() -> bool:
    """True if the kernel lets a process reset its peak-RSS mark (Linux)."""
    return os.path.exists("/proc/self/clear_refs")


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS; False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def thread_pools() -> list[dict]:
    """threadpoolctl's view of the BLAS/OpenMP pools (which kernel, how many threads)."""
    from threadpoolctl import threadpool_info

    keys = (
        "user_api",
        "internal_api",
        "prefix",
        "version",
        "num_threads",
        "architecture",
        "threading_layer",
    )
    return [{k: info.get(k) for k in keys if k in info} for info in threadpool_info()]


def environment() -> dict:
    """Python, machine, CPU, cores and the OpenBLAS variables that change its speed."""
    env = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
    }
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_THREAD_TIMEOUT"):
        env[name] = os.environ.get(name)
    return env


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"

"""A run's output directory, chosen so that no run ever writes over another run's files.

- A new run gets a directory of its own: the default name ``runs/<kind>-<date>-<time>``
  gains ``-2``, ``-3`` ... when that name is taken (two runs started in one second), and
  an explicit ``--out`` must not hold a run already.
- ``--resume`` writes into the directory it was given (where its ``last.npz`` is), never
  into the ``out_dir`` recorded in the checkpoint: that path may be relative to another
  working directory, or crafted.
- While a run trains, it holds an exclusive lock on ``<dir>/.lock``, so a second process
  cannot train into, or resume, the same directory at the same time. Temporary files
  that an interrupted write left behind (``kill -9``) are removed once the lock is held.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from nnscratch.utils.atomic import remove_stale_temporaries

# Files that mark a directory as holding a run of ``nnscratch train``.
RUN_FILES = ("config.json", "last.npz", "best.npz", "metrics.csv", "summary.json")
LOCK_NAME = ".lock"


def default_name(kind: str) -> Path:
    """``runs/<kind>-<date>-<time>`` (relative to the working directory)."""
    return Path(time.strftime(f"runs/{kind}-%Y%m%d-%H%M%S"))


def check_output_dir(path: str | os.PathLike) -> None:
    """Refuse, before any work, an output path that cannot become a new run's directory.

    The path may not be a file or lie under one, must not hold a run already, and the
    nearest existing folder on it must be writable. Raises ``ValueError`` or an
    ``OSError`` naming the path.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {path} is an existing file, not a directory")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"--out {path} lies under {existing}, which is a file")
    if existing == path:
        held = [name for name in RUN_FILES if (path / name).exists()]
        if held:
            raise ValueError(
                f"--out {path} already holds a run ({', '.join(held)}); continue it with "
                f"`nnscratch train --resume {path}` or choose another --out"
            )
    if os.statvfs(existing).f_flag & os.ST_RDONLY:
        raise OSError(errno.EROFS, f"cannot write {path}: {existing} is on a read-only file system")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, f"cannot write into {existing} (for --out {path})")


def create_output_dir(path: str | os.PathLike | None, kind: str = "train") -> Path:
    """Create a new run directory and return it.

    ``None`` picks ``runs/<kind>-<date>-<time>``, with ``-2``, ``-3`` ... appended while
    that name exists (``mkdir`` is atomic, so two runs never get the same one). An
    explicit path may exist but must not hold a run (checked again under the lock by
    :func:`lock_run_dir` callers).
    """
    if path is not None:
        check_output_dir(path)
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        return path
    base = default_name(kind)
    base.parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        candidate = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, f"no free run directory name next to {base}")


@contextlib.contextmanager
def lock_run_dir(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on ``<path>/.lock`` while the body runs; refuse if it is held.

    Stale temporary files of interrupted atomic writes in ``path`` are removed first.
    """
    path = Path(path)
    fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(
                f"{path} is in use by another nnscratch process (it holds {path / LOCK_NAME})"
            ) from None
        remove_stale_temporaries(path)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def resolve_resume(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(run directory, its last.npz)`` for ``--resume DIR`` or ``--resume DIR/last.npz``.

    ``best.npz`` is refused: continuing from it would replace the run's later progress.
    """
    path = Path(path)
    if path.is_dir():
        run_dir, checkpoint = path, path / "last.npz"
    elif path.is_file():
        if path.name != "last.npz":
            raise ValueError(
                f"--resume takes a run directory or its last.npz, not {path.name}: continuing "
                f"from {path.name} would overwrite the run's later progress; to train on from "
                f"these weights start a new run with --init-from {path}"
            )
        run_dir, checkpoint = path.parent, path
    else:
        raise FileNotFoundError(f"run not found: {path}")
    if not checkpoint.is_file():
        raise FileNotFoundError(f"{run_dir} holds no last.npz to resume from")
    return run_dir, checkpoint


def checkpoint_in(path: str | os.PathLike) -> Path:
    """The checkpoint a command should read: ``path`` itself, or a run directory's ``best.npz``."""
    path = Path(path)
    if path.is_dir():
        if not (path / "best.npz").is_file():
            raise FileNotFoundError(f"{path} holds no best.npz (is it a run directory?)")
        return path / "best.npz"
    return path

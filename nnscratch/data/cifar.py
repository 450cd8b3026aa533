"""CIFAR-10 and CIFAR-100 from the official "python version" tarballs.

Each batch file in the tarball is a pickled dict (written by Python 2, so it is read
with ``encoding="bytes"`` and its keys are bytes): ``data`` is uint8 (n, 3072), the
1024 red, then green, then blue values of each 32x32 image in row-major order;
``labels`` (CIFAR-10) or ``fine_labels``/``coarse_labels`` (CIFAR-100) are lists of
ints. The class names are in ``batches.meta`` (``label_names``) or ``meta``
(``fine_label_names``, ``coarse_label_names``).

The batches are read straight from the tarball, never extracted, and every member is
checked first: an absolute path, a ``..`` component, a link or a device is refused.
Pickles go through :class:`RestrictedUnpickler`, which builds only NumPy arrays and
plain containers, so a tampered file cannot run code.
"""

from __future__ import annotations

import importlib
import io
import os
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from nnscratch.utils.safe_pickle import RestrictedUnpickler, UnsafePickleError

from .dataset import ArrayDataset
from .download import data_root, download


@dataclass(frozen=True)
class _Spec:
    title: str
    url: str
    md5: str  # of the tarball
    folder: str  # the top-level folder inside the tarball
    train: tuple[str, ...]
    test: tuple[str, ...]
    meta: str

    @property
    def archive(self) -> str:
        return self.url.rsplit("/", 1)[-1]


CIFAR10 = _Spec(
    title="CIFAR-10",
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    md5="c58f30108f718f92721af3b95e74349a",
    folder="cifar-10-batches-py",
    train=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test=("test_batch",),
    meta="batches.meta",
)
CIFAR100 = _Spec(
    title="CIFAR-100",
    url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    md5="eb9058c3a382ffc7106e4002c42a8d85",
    folder="cifar-100-python",
    train=("train",),
    test=("test",),
    meta="meta",
)


def cifar10(
    root: str | os.PathLike | None = None, download: bool = True, *, mirror: str | None = None
) -> tuple[ArrayDataset, ArrayDataset]:
    """CIFAR-10 as ``(train, test)``: images uint8 (50000|10000, 3, 32, 32), labels int64.

    Looks in ``root`` (default: the cache, see :func:`data_root`) for
    ``cifar-10-python.tar.gz`` or the extracted ``cifar-10-batches-py/`` folder; ``root``
    may also be that tarball or that folder itself. If neither is there and
    ``download`` is true, fetches the tarball (checking its MD5).
    """
    members = _read(CIFAR10, root, download, mirror)
    classes = _class_names(members, CIFAR10, "label_names")
    return (
        _batches(members, CIFAR10.train, "labels", classes),
        _batches(members, CIFAR10.test, "labels", classes),
    )


def cifar100(
    root: str | os.PathLike | None = None,
    download: bool = True,
    label: str = "fine",
    *,
    mirror: str | None = None,
) -> tuple[ArrayDataset, ArrayDataset]:
    """CIFAR-100 as ``(train, test)``: images uint8 (50000|10000, 3, 32, 32), labels int64.

    ``label="fine"`` gives the 100 classes, ``label="coarse"`` the 20 superclasses.
    Files are found or fetched as in :func:`cifar10`.
    """
    if label not in ("fine", "coarse"):
        raise ValueError(f'cifar100: label must be "fine" or "coarse", got {label!r}')
    members = _read(CIFAR100, root, download, mirror)
    classes = _class_names(members, CIFAR100, f"{label}_label_names")
    return (
        _batches(members, CIFAR100.train, f"{label}_labels", classes),
        _batches(members, CIFAR100.test, f"{label}_labels", classes),
    )


# --- finding the files -------------------------------------------------------------


def _read(spec: _Spec, root, allow_download: bool, mirror: str | None) -> dict[str, bytes]:
    """The raw bytes of every member the spec needs, keyed by member name."""
    base = data_root(root)
    wanted = (*spec.train, *spec.test, spec.meta)
    if base.is_file():
        return read_tar_members(base, spec.folder, wanted)
    for folder in (base / spec.folder, base):
        if (folder / spec.meta).is_file():
            return _read_folder(folder, wanted)
    archive = base / spec.archive
    if not archive.is_file():
        if not allow_download:
            raise FileNotFoundError(
                f"{spec.title} not found: looked for {archive} and {base / spec.folder}/. "
                f"Pass download=True to fetch it from {spec.url} (md5 {spec.md5}), or put the "
                "tarball or its extracted folder there (or point root= or $NNSCRATCH_DATA at "
                "where you keep it)."
            )
        download(spec.url, archive, spec.md5, mirror=mirror)
    return read_tar_members(archive, spec.folder, wanted)


def _read_folder(folder: Path, wanted: Iterable[str]) -> dict[str, bytes]:
    missing = [name for name in wanted if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: missing batch files {', '.join(missing)}")
    return {name: (folder / name).read_bytes() for name in wanted}


def check_tar_member(member: tarfile.TarInfo, archive: str | os.PathLike) -> None:
    """Refuse a member whose name is absolute or has ``..``, or that is not a plain
    file or directory (links, devices, FIFOs): ``ValueError`` naming archive and member."""
    name = member.name
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts:
        raise ValueError(f"{archive}: refusing unsafe member path {name!r}")
    if not (member.isfile() or member.isdir()):
        kind = "link" if member.issym() or member.islnk() else "device or special file"
        raise ValueError(f"{archive}: refusing member {name!r}: it is a {kind}")


def read_tar_members(
    archive: str | os.PathLike, folder: str, wanted: Iterable[str]
) -> dict[str, bytes]:
    """Read ``folder/<name>`` for each wanted name from a (gzipped) tarball, in one pass.

    Every member is checked with :func:`check_tar_member`, wanted or not; nothing is
    written to disk. Returns ``{name: bytes}``.
    """
    paths = {f"{folder}/{name}": name for name in wanted}
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r|*") as tar:
            for member in tar:
                check_tar_member(member, archive)
                name = member.name.removeprefix("./")
                if member.isfile() and name in paths:
                    found[paths[name]] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError) as e:
        raise ValueError(f"{archive}: not a readable tar archive ({e})") from e
    missing = [path for path, name in paths.items() if name not in found]
    if missing:
        raise ValueError(f"{archive}: missing members {', '.join(missing)}")
    return found


# --- parsing the batches -----------------------------------------------------------


def _numpy_internal(module: str, name: str) -> Any:
    """``numpy._core.<module>.<name>`` (NumPy 2), falling back to ``numpy.core`` (NumPy 1)."""
    for package in ("numpy._core", "numpy.core"):
        try:
            return getattr(importlib.import_module(f"{package}.{module}"), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"numpy has no {module}.{name}")


def _latin1_encode(text: Any, encoding: str = "latin1") -> bytes:
    """Stand-in for ``_codecs.encode``: Python 3 pickles ``bytes`` at protocol 2 as
    ``_codecs.encode(str, "latin1")``; any other use is refused."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"refusing _codecs.encode({type(text).__name__}, {encoding!r})")
    return text.encode("latin1")


def _array_globals() -> dict[tuple[str, str], Any]:
    """The globals a pickled NumPy array names, and nothing else.

    The official files (Python 2, NumPy 1) name ``numpy.core.multiarray._reconstruct``,
    ``numpy.ndarray`` and ``numpy.dtype``; today's NumPy writes ``numpy._core...``
    instead, plus ``_codecs.encode`` for bytes at protocol 2 and
    ``numpy._core.numeric._frombuffer`` at protocol 5.
    """
    reconstruct = _numpy_internal("multiarray", "_reconstruct")
    frombuffer = _numpy_internal("numeric", "_frombuffer")
    return {
        ("numpy.core.multiarray", "_reconstruct"): reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): reconstruct,
        ("numpy.core.numeric", "_frombuffer"): frombuffer,
        ("numpy._core.numeric", "_frombuffer"): frombuffer,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }


def load_pickle(data: bytes, source: str) -> dict[str, Any]:
    """Unpickle one CIFAR batch or meta file safely; returns the dict with str keys."""
    try:
        obj = RestrictedUnpickler(
            io.BytesIO(data), _array_globals(), source=source, encoding="bytes"
        ).load()
    except UnsafePickleError:
        raise
    except Exception as e:
        raise ValueError(f"{source}: not a readable CIFAR pickle ({e!r})") from e
    if not isinstance(obj, dict):
        raise ValueError(f"{source}: expected a pickled dict, got {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _field(d: dict[str, Any], key: str, source: str) -> Any:
    if key not in d:
        raise ValueError(f"{source}: no {key!r} entry (found {', '.join(sorted(d))})")
    return d[key]


def _class_names(members: dict[str, bytes], spec: _Spec, key: str) -> list[str]:
    source = f"{spec.folder}/{spec.meta}"
    names = _field(load_pickle(members[spec.meta], source), key, source)
    return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]


def _batches(
    members: dict[str, bytes], names: tuple[str, ...], label_key: str, classes: list[str]
) -> ArrayDataset:
    """Concatenate batch files into one dataset: images (N, 3, 32, 32), labels (N,)."""
    images, labels = [], []
    for name in names:
        d = load_pickle(members[name], name)
        data = np.asarray(_field(d, "data", name))
        y = np.asarray(_field(d, label_key, name))
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise ValueError(
                f"{name}: 'data' must be uint8 (n, 3072), got {data.dtype} {data.shape}"
            )
        if y.shape != (len(data),) or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(
                f"{name}: {label_key!r} must be {len(data)} integers, got {y.dtype} {y.shape}"
            )
        images.append(data.reshape(-1, 3, 32, 32))  # row = R plane, G plane, B plane
        labels.append(y.astype(np.int64))
    return ArrayDataset(np.concatenate(images), np.concatenate(labels), classes)

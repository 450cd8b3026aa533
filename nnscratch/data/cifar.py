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

Nor can a tampered file make the reader allocate more than an official one would: a
member larger than the official one can be (:data:`BYTES_PER_IMAGE` per image it may
hold, :data:`META_MAX_BYTES` for the class names) is refused from its tar header and is
never read past that limit; an array is built only the way NumPy pickles one, so it
holds no more bytes than the pickle it came from; a batch may hold no more images than
the official one (10,000, or 50,000 for CIFAR-100's ``train``). Every refusal is a
``ValueError`` naming the file.
"""

from __future__ import annotations

import importlib
import io
import os
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

import numpy as np

from nnscratch.utils.safe_pickle import RestrictedUnpickler, UnsafePickleError

from .dataset import ArrayDataset
from .download import data_root, download

# The official batch pickles take 3,104 bytes per image (3,072 pixels, the label(s), the
# file name and pickle framing); a member may take this many per image it can hold.
BYTES_PER_IMAGE = 3072 + 256
META_MAX_BYTES = 1 << 16  # the official meta files are 158 and 1,758 bytes


@dataclass(frozen=True)
class _Spec:
    title: str
    url: str
    md5: str  # of the tarball
    folder: str  # the top-level folder inside the tarball
    train: tuple[str, ...]
    test: tuple[str, ...]
    meta: str
    images_per_train_file: int  # as in the official files; a file may hold no more
    images_per_test_file: int
    class_counts: Mapping[str, int]  # meta key -> number of class names

    @property
    def archive(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    def max_images(self, name: str) -> int:
        return self.images_per_train_file if name in self.train else self.images_per_test_file

    def max_bytes(self) -> dict[str, int]:
        """The largest size each member may have, keyed by member name."""
        limits = {name: self.max_images(name) * BYTES_PER_IMAGE for name in self.train + self.test}
        return {**limits, self.meta: META_MAX_BYTES}


CIFAR10 = _Spec(
    title="CIFAR-10",
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    md5="c58f30108f718f92721af3b95e74349a",
    folder="cifar-10-batches-py",
    train=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test=("test_batch",),
    meta="batches.meta",
    images_per_train_file=10_000,
    images_per_test_file=10_000,
    class_counts={"label_names": 10},
)
CIFAR100 = _Spec(
    title="CIFAR-100",
    url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    md5="eb9058c3a382ffc7106e4002c42a8d85",
    folder="cifar-100-python",
    train=("train",),
    test=("test",),
    meta="meta",
    images_per_train_file=50_000,
    images_per_test_file=10_000,
    class_counts={"fine_label_names": 100, "coarse_label_names": 20},
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
    origin, members = _read(CIFAR10, root, download, mirror)
    classes = _class_names(members, origin, CIFAR10, "label_names")
    return (
        _batches(members, origin, CIFAR10, CIFAR10.train, "labels", classes),
        _batches(members, origin, CIFAR10, CIFAR10.test, "labels", classes),
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
    origin, members = _read(CIFAR100, root, download, mirror)
    classes = _class_names(members, origin, CIFAR100, f"{label}_label_names")
    return (
        _batches(members, origin, CIFAR100, CIFAR100.train, f"{label}_labels", classes),
        _batches(members, origin, CIFAR100, CIFAR100.test, f"{label}_labels", classes),
    )


# --- finding the files -------------------------------------------------------------


def _read(
    spec: _Spec, root, allow_download: bool, mirror: str | None
) -> tuple[str, dict[str, bytes]]:
    """``(origin, members)``: the raw bytes of every member the spec needs, keyed by member
    name, and the prefix that makes a member name a file name for error messages."""
    base = data_root(root)
    wanted = spec.max_bytes()
    if base.is_file():
        return f"{base}:{spec.folder}/", read_tar_members(base, spec.folder, wanted)
    for folder in (base / spec.folder, base):
        if (folder / spec.meta).is_file():
            return f"{folder}/", _read_folder(folder, wanted)
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
    return f"{archive}:{spec.folder}/", read_tar_members(archive, spec.folder, wanted)


def _read_at_most(file: IO[bytes], declared: int, limit: int, source: str) -> bytes:
    """Read ``file``, whose size is ``declared`` (by a tar header or the file system), if
    neither that nor what it actually holds exceeds ``limit`` bytes; else ``ValueError``."""
    if declared <= limit:
        data = file.read(limit + 1)  # whatever the declared size, never more than this
        if len(data) <= limit:
            return data
        declared = len(data)
    raise ValueError(
        f"{source} is {declared:,} bytes, more than the {limit:,} bytes the official file "
        "can have; refusing to read it (the file is damaged or not the official one)"
    )


def _read_folder(folder: Path, wanted: Mapping[str, int]) -> dict[str, bytes]:
    """``{name: bytes}`` of the wanted files in ``folder``; ``wanted`` maps each name to
    the most bytes it may have."""
    missing = [name for name in wanted if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: missing batch files {', '.join(missing)}")
    found = {}
    for name, limit in wanted.items():
        with open(folder / name, "rb") as f:
            found[name] = _read_at_most(f, os.fstat(f.fileno()).st_size, limit, f.name)
    return found


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
    archive: str | os.PathLike, folder: str, wanted: Mapping[str, int]
) -> dict[str, bytes]:
    """Read ``folder/<name>`` for each wanted name from a (gzipped) tarball, in one pass.

    ``wanted`` maps each name to the most bytes that member may have: a larger one is
    refused from its header, before any of it is decompressed. Every member is checked
    with :func:`check_tar_member`, wanted or not, and may appear once; nothing is written
    to disk. Returns ``{name: bytes}``.
    """
    paths = {f"{folder}/{name}": name for name in wanted}
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r|*") as tar:
            for member in tar:
                check_tar_member(member, archive)
                path = member.name.removeprefix("./")
                if member.isfile() and path in paths:
                    name = paths[path]
                    if name in found:
                        raise ValueError(f"{archive}: member {path} appears twice")
                    source = f"{archive}: member {path}"
                    with tar.extractfile(member) as f:
                        found[name] = _read_at_most(f, member.size, wanted[name], source)
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


class _NdarrayName:
    """What ``numpy.ndarray`` resolves to in a pickle: NumPy's own pickles only pass it to
    ``_reconstruct``, and calling it is refused, so a pickle cannot hand an array its own
    shape, strides and buffer (a stride-0 view makes one byte look like gigabytes)."""

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        raise UnsafePickleError("refusing to call numpy.ndarray: not how NumPy pickles an array")


_NDARRAY = _NdarrayName()


def _empty_array(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """Stand-in for NumPy's ``_reconstruct``: only the empty array every pickled ndarray
    starts from; its data arrives in the state that follows, which NumPy size-checks."""
    if subtype is not _NDARRAY or shape != (0,):
        raise UnsafePickleError(
            f"refusing _reconstruct({subtype!r}, {shape!r}): only an empty numpy.ndarray"
        )
    return _numpy_internal("multiarray", "_reconstruct")(np.ndarray, (0,), dtype)


def _array_globals() -> dict[tuple[str, str], Any]:
    """The globals a pickled NumPy array names, and nothing else.

    The official files (Python 2, NumPy 1) name ``numpy.core.multiarray._reconstruct``,
    ``numpy.ndarray`` and ``numpy.dtype``; today's NumPy writes ``numpy._core...``
    instead, plus ``_codecs.encode`` for bytes at protocol 2 and
    ``numpy._core.numeric._frombuffer`` at protocol 5.
    """
    frombuffer = _numpy_internal("numeric", "_frombuffer")
    return {
        ("numpy.core.multiarray", "_reconstruct"): _empty_array,
        ("numpy._core.multiarray", "_reconstruct"): _empty_array,
        ("numpy.core.numeric", "_frombuffer"): frombuffer,
        ("numpy._core.numeric", "_frombuffer"): frombuffer,
        ("numpy", "ndarray"): _NDARRAY,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }


def load_pickle(data: bytes, source: str) -> dict[str, Any]:
    """Unpickle one CIFAR batch or meta file safely; returns the dict with str keys."""
    try:
        obj = RestrictedUnpickler(
            io.BytesIO(data), _array_globals(), source=source, encoding="bytes"
        ).load()
    except UnsafePickleError as e:
        if str(e).startswith(source):
            raise
        raise UnsafePickleError(f"{source}: {e}") from e
    except Exception as e:
        raise ValueError(f"{source}: not a readable CIFAR pickle ({e!r})") from e
    if not isinstance(obj, dict):
        raise ValueError(f"{source}: expected a pickled dict, got {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _field(d: dict[str, Any], key: str, source: str) -> Any:
    if key not in d:
        raise ValueError(f"{source}: no {key!r} entry (found {', '.join(sorted(d))})")
    return d[key]


def _describe(value: Any) -> str:
    """A short description of an unpickled value for error messages."""
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array of shape {value.shape}"
    if isinstance(value, list):
        return f"a list of {len(value):,} items"
    return f"a {type(value).__name__}"


def _check_array_memory(array: np.ndarray, what: str, pickle_size: int) -> None:
    """Refuse an array that is not contiguous or holds more bytes than its pickle: NumPy
    never writes such a file, and copying one (a stride-0 view repeats one item) would
    allocate what the file does not hold."""
    if not (array.flags.c_contiguous or array.flags.f_contiguous) or array.nbytes > pickle_size:
        raise ValueError(
            f"{what} is {_describe(array)} with strides {array.strides} ({array.nbytes:,} "
            f"bytes), which a {pickle_size:,}-byte pickle cannot hold"
        )


def _class_names(members: dict[str, bytes], origin: str, spec: _Spec, key: str) -> list[str]:
    source = origin + spec.meta
    names = _field(load_pickle(members[spec.meta], source), key, source)
    count = spec.class_counts[key]
    if (
        not isinstance(names, list)
        or len(names) != count
        or not all(isinstance(n, bytes | str) for n in names)
    ):
        raise ValueError(
            f"{source}: {key!r} must be a list of {count} names, got {_describe(names)}"
        )
    try:
        return [n.decode("utf-8") if isinstance(n, bytes) else n for n in names]
    except UnicodeDecodeError as e:
        raise ValueError(f"{source}: {key!r} holds a name that is not UTF-8 ({e})") from e


def _batch_arrays(
    d: dict[str, Any], source: str, pickle_size: int, max_images: int, label_key: str, classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (n, 3, 32, 32) and labels int64 (n,) of one unpickled batch, checked
    before anything is copied: at most ``max_images`` images, arrays no larger than
    their pickle, labels in ``[0, classes)``."""
    data = _field(d, "data", source)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.shape[1:] != (3072,):
        raise ValueError(f"{source}: 'data' must be uint8 (n, 3072), got {_describe(data)}")
    _check_array_memory(data, f"{source}: 'data'", pickle_size)
    n = len(data)
    if n > max_images:
        raise ValueError(
            f"{source}: 'data' holds {n:,} images, more than the {max_images:,} "
            "of the official file"
        )
    labels = _field(d, label_key, source)
    if isinstance(labels, np.ndarray):
        _check_array_memory(labels, f"{source}: {label_key!r}", pickle_size)
        valid = labels.shape == (n,) and np.issubdtype(labels.dtype, np.integer)
    else:  # the official files hold a list of ints
        valid = isinstance(labels, list) and len(labels) == n
        valid = valid and all(type(k) is int and 0 <= k < classes for k in labels)
    if not valid:
        raise ValueError(
            f"{source}: {label_key!r} must be {n} integers in [0, {classes}), "
            f"got {_describe(labels)}"
        )
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)  # row = R, G, B planes


def _batches(
    members: dict[str, bytes],
    origin: str,
    spec: _Spec,
    names: tuple[str, ...],
    label_key: str,
    classes: list[str],
) -> ArrayDataset:
    """Concatenate batch files into one dataset: images (N, 3, 32, 32), labels (N,)."""
    images, labels = [], []
    for name in names:
        source, blob = origin + name, members[name]
        batch = load_pickle(blob, source)
        x, y = _batch_arrays(
            batch, source, len(blob), spec.max_images(name), label_key, len(classes)
        )
        images.append(x)
        labels.append(y)
    return ArrayDataset(np.concatenate(images), np.concatenate(labels), classes, origin)

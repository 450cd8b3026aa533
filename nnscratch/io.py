"""Save and load state dicts: nnscratch's ``.npz`` files and PyTorch's ``.pth`` files.

A state dict is an ordered ``dict[str, np.ndarray]`` keyed by torchvision's names
(``conv1.weight``, ``bn1.running_mean``, ``fc.bias``). nnscratch stores it as an
uncompressed ``.npz``, written atomically.

A PyTorch checkpoint is a pickle whose tensors point at raw byte storages kept beside
it. We read it without importing torch: the pickle goes through a restricted unpickler
whose allowlist maps torch's tensor-rebuilding functions to NumPy ones, so no code
named in the file ever runs, and anything else it names is refused.

Both readers take untrusted files, so what a file can make them allocate is bounded by
what it holds: a zip archive's members may decompress to at most
``_MAX_COMPRESSION_RATIO`` times their stored bytes, every array's size is checked
against its member before it is read, and a ``.pth`` file's tensors may hold at most
``_MAX_VIEW_FACTOR`` times the bytes of its storages. Under ``_ALWAYS_ALLOWED_BYTES``
in total, the ratios are not applied, so no small legitimate file is refused.
"""

from __future__ import annotations

import math
import os
import pickle
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import IO, Any

import numpy as np

from nnscratch.utils.atomic import atomic_write
from nnscratch.utils.safe_pickle import RestrictedUnpickler, UnsafePickleError

__all__ = [
    "UnsafePickleError",
    "load",
    "load_safetensors",
    "load_torch_checkpoint",
    "save",
    "save_safetensors",
    "save_torch_checkpoint",
]

# Limits for untrusted files (see the module docstring). Our own .npz files and torch's
# .pth archives are stored uncompressed (ratio 1); np.savez_compressed of trained weights
# reaches about 1.1, of sparse or zero-heavy arrays a few times that.
_MAX_COMPRESSION_RATIO = 8
# A tensor and its transpose, or two tied weights, view one storage: twice its bytes.
_MAX_VIEW_FACTOR = 2
_ALWAYS_ALLOWED_BYTES = 64 << 20
_READ_CHUNK_BYTES = 1 << 20

# np.savez takes these as its own arguments, so they cannot name an array.
_SAVEZ_ARGUMENT_NAMES = frozenset({"file", "allow_pickle"})

# Reading a damaged file fails in many ways; all of them mean "corrupted or not ours".
_CORRUPT_FILE_ERRORS = (
    pickle.UnpicklingError,
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    KeyError,
    IndexError,
    TypeError,
    ValueError,
    AttributeError,
    OverflowError,
    NotImplementedError,
)


# ---------------------------------------------------------------------------------------
# nnscratch .npz state dicts
# ---------------------------------------------------------------------------------------


def save(model_or_state: Any, path: str | os.PathLike) -> None:
    """Write a state dict to ``path`` as an uncompressed ``.npz``, atomically.

    ``model_or_state`` is a model (anything with ``state_dict()``) or a mapping of str
    keys to numeric array-likes. The file is named exactly ``path`` (no ``.npz`` is
    appended) and replaces any old file only once it is complete.

    Raises ``TypeError`` for a non-str key or a non-numeric value and ``ValueError`` for
    a value that is not a rectangular array; both name the key.
    """
    arrays = _state_arrays(model_or_state, "biufcU", "save()")  # U: text (class names)
    reserved = sorted(_SAVEZ_ARGUMENT_NAMES & set(arrays))
    if reserved:
        raise ValueError(f"state dict key {reserved[0]!r} is reserved by np.savez; rename it")
    with atomic_write(path, "wb") as f:
        # A file object (not a name) so that numpy cannot append ".npz" to the temp name.
        np.savez(f, allow_pickle=False, **arrays)


def _state_arrays(model_or_state: Any, kinds: str, caller: str) -> dict[str, np.ndarray]:
    """The state dict of a model or mapping as arrays whose dtype kind is one of ``kinds``."""
    state = model_or_state.state_dict() if hasattr(model_or_state, "state_dict") else model_or_state
    if not isinstance(state, Mapping):
        raise TypeError(
            f"{caller} expects a model with state_dict() or a mapping of str to arrays, "
            f"got {type(state).__name__}"
        )
    arrays = {}
    for key, value in state.items():
        if not isinstance(key, str):
            raise TypeError(f"state dict key {key!r} is a {type(key).__name__}, expected str")
        try:
            array = np.asarray(value)
        except ValueError as exc:
            raise ValueError(f"state dict entry {key!r} is not an array: {exc}") from None
        if array.dtype.kind not in kinds:
            raise TypeError(
                f"state dict entry {key!r} has dtype {array.dtype}, which {caller} cannot store"
            )
        arrays[key] = array
    return arrays


def load(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a state dict written by :func:`save` (or any ``.npz`` of numeric arrays).

    Keys keep their saved order and arrays their dtype and shape (0-d stays 0-d). Object
    arrays are refused. Each entry's ``.npy`` header must describe exactly the bytes its
    zip member declares, and the archive must not be a compression bomb, both checked
    before any array data is read; so the arrays returned are all that is allocated.

    Raises ``FileNotFoundError`` if ``path`` does not exist, and ``ValueError`` naming the
    file if it is truncated, corrupted or not an ``.npz`` state file.
    """
    with open(path, "rb") as f:
        try:
            magic = np.lib.format.MAGIC_PREFIX
            if f.read(len(magic)) == magic:
                cause = "it holds a single array, not a dict of arrays"
            else:
                f.seek(0)
                with zipfile.ZipFile(f) as archive:
                    _check_decompressed_size(archive)
                    return dict(_read_npy_member(archive, info) for info in archive.infolist())
        except _CORRUPT_FILE_ERRORS as exc:
            cause = f"{type(exc).__name__}: {exc}"
    raise ValueError(f"{path}: corrupted or not an nnscratch state file ({cause})")


def _read_npy_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[str, np.ndarray]:
    """One ``<key>.npy`` member of an ``.npz``, its header checked against the member size."""
    if not info.filename.endswith(".npy"):
        raise ValueError(f"member {info.filename!r} is not a .npy array")
    key = info.filename[: -len(".npy")]
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(member)
        else:
            raise ValueError(f"entry {key!r} has unsupported .npy format version {version}")
        if dtype.hasobject:
            raise ValueError(f"entry {key!r} holds Python objects (dtype {dtype}); not loaded")
        nbytes = math.prod(shape) * dtype.itemsize
        if info.file_size - member.tell() != nbytes:
            raise ValueError(
                f"entry {key!r}: its header describes {shape} {dtype} ({nbytes:,} bytes) "
                f"but the member holds {info.file_size - member.tell():,} bytes of data"
            )
        data = _read_member_rest(member, nbytes, f"entry {key!r}")
    return key, np.frombuffer(data, dtype).reshape(shape, order="F" if fortran_order else "C")


def _check_decompressed_size(archive: zipfile.ZipFile) -> None:
    """Refuse a zip bomb: members declaring far more bytes than the archive stores."""
    stored = sum(info.compress_size for info in archive.infolist())
    declared = sum(info.file_size for info in archive.infolist())
    if declared > max(_ALWAYS_ALLOWED_BYTES, _MAX_COMPRESSION_RATIO * stored):
        raise ValueError(
            f"its members would decompress to {declared:,} bytes from {stored:,} stored, "
            f"more than {_MAX_COMPRESSION_RATIO} times (a zip bomb?)"
        )


def _read_exactly(stream: IO[bytes], nbytes: int, what: str) -> bytearray:
    """Read ``nbytes`` from ``stream`` in bounded chunks, refusing a stream that ends early."""
    data = bytearray(nbytes)
    view = memoryview(data)
    filled = 0
    while filled < nbytes:
        count = stream.readinto(view[filled : filled + _READ_CHUNK_BYTES])
        if not count:
            raise ValueError(f"{what} ends after {filled:,} of its {nbytes:,} bytes")
        filled += count
    return data


def _read_member_rest(member: IO[bytes], nbytes: int, what: str) -> bytearray:
    """The rest of a zip member, which must be exactly ``nbytes`` (at most one more is read)."""
    data = _read_exactly(member, nbytes, what)
    if member.read(1):
        raise ValueError(f"{what} holds more than the {nbytes:,} bytes it declares")
    return data


# ---------------------------------------------------------------------------------------
# PyTorch .pth checkpoints, read without torch
# ---------------------------------------------------------------------------------------

# torch storage class -> (dtype of one element on disk, dtype we return). The byte order
# of the disk dtype is set per file. NumPy has no bfloat16; half floats become float32.
_STORAGE_DTYPES = {
    "FloatStorage": ("f4", "f4"),
    "DoubleStorage": ("f8", "f8"),
    "HalfStorage": ("f2", "f4"),
    "BFloat16Storage": ("u2", "f4"),
    "LongStorage": ("i8", "i8"),
    "IntStorage": ("i4", "i4"),
    "ShortStorage": ("i2", "i2"),
    "CharStorage": ("i1", "i1"),
    "ByteStorage": ("u1", "u1"),
    "BoolStorage": ("?", "?"),
}

# Legacy (pre-zip) format: these two pickles open the file (torch/serialization.py).
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


def _storage_itemsize(storage_type: str) -> int:
    return np.dtype(_STORAGE_DTYPES[storage_type][0]).itemsize


def _storage_array(storage_type: str, raw: bytearray, byteorder: str) -> np.ndarray:
    """Decode one storage's raw bytes into a native-endian 1-D array."""
    disk, result = _STORAGE_DTYPES[storage_type]
    disk_dtype = np.dtype(disk).newbyteorder("<" if byteorder == "little" else ">")
    array = np.frombuffer(raw, dtype=disk_dtype)
    if storage_type == "BFloat16Storage":
        # A bfloat16 is the upper 16 bits of a float32.
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array.astype(result)  # a native-endian, writable copy


def _tensor_view(
    storage: np.ndarray, storage_offset: int, size: tuple, stride: tuple
) -> np.ndarray:
    """The read-only view of ``storage`` that a torch tensor's layout describes.

    torch counts offset and strides in elements; NumPy strides are in bytes. The layout is
    checked first: ``as_strided`` reads whatever memory it is pointed at, so the view must
    stay inside the storage, and it may not have more elements than the storage holds
    past the offset, or a zero or overlapping stride would let a few bytes of file stand
    for gigabytes of tensor.
    """
    size, stride = tuple(size), tuple(stride)
    if not isinstance(storage, np.ndarray) or storage.ndim != 1:
        raise ValueError("tensor storage is not a storage")
    layout = f"size {size}, stride {stride}, offset {storage_offset}"
    if len(size) != len(stride) or min((storage_offset, *size, *stride)) < 0:
        raise ValueError(f"bad tensor layout: {layout}")
    numel = math.prod(size)
    if numel > storage.size - storage_offset:
        raise ValueError(
            f"tensor of {layout} has {numel:,} elements but its storage holds "
            f"{max(storage.size - storage_offset, 0):,} past the offset (overlapping or "
            "zero strides are not loaded)"
        )
    if numel > 0:
        last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= storage.size:
            raise ValueError(
                f"tensor of {layout} reaches past its storage of {storage.size} elements"
            )
    return np.lib.stride_tricks.as_strided(
        storage[storage_offset:],
        shape=size,
        strides=[s * storage.itemsize for s in stride],
        writeable=False,
    )


def _rebuild_parameter(data, *_grad_hooks):
    """``torch._utils._rebuild_parameter``: an ``nn.Parameter`` becomes its plain array."""
    return data


# Everything a checkpoint of tensors may name, besides ``_rebuild_tensor_v2`` (each
# unpickler's own, which counts the bytes it copies). Storage classes map to their name
# (an immutable str): the persistent id hands it back to ``persistent_load``, which looks
# up the dtype.
_TORCH_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): name for name in _STORAGE_DTYPES},
}


class _TorchUnpickler(RestrictedUnpickler):
    """Unpickles torch's main pickle; each storage comes from ``load_storage`` once per key.

    torch pickles a storage as the persistent id
    ``("storage", storage_class, key, location, numel[, view_metadata])``. The tensors
    copied out of the storages may hold ``_MAX_VIEW_FACTOR`` times the storages' bytes.
    """

    def __init__(
        self,
        file: IO[bytes],
        source: str,
        load_storage: Callable[[str, str, int], np.ndarray],
    ):
        allowed = {**_TORCH_ALLOWED, ("torch._utils", "_rebuild_tensor_v2"): self._rebuild_tensor}
        super().__init__(file, allowed, source=source)
        self._load_storage = load_storage
        self._storages: dict[str, np.ndarray] = {}
        self._storage_bytes = 0
        self._tensor_bytes = 0

    def _rebuild_tensor(
        self, storage: np.ndarray, storage_offset: int, size: tuple, stride: tuple, *_metadata
    ) -> np.ndarray:
        """``torch._utils._rebuild_tensor_v2``: copy out the tensor that views ``storage``.

        ``requires_grad``, backward hooks and tensor metadata are dropped.
        """
        view = _tensor_view(storage, storage_offset, size, stride)
        self._tensor_bytes += view.nbytes
        budget = max(_ALWAYS_ALLOWED_BYTES, _MAX_VIEW_FACTOR * self._storage_bytes)
        if self._tensor_bytes > budget:
            raise ValueError(
                f"its tensors would take more than {budget:,} bytes, over "
                f"{_MAX_VIEW_FACTOR} times its {self._storage_bytes:,} bytes of storage"
            )
        return view.copy()

    def persistent_load(self, pid: Any) -> np.ndarray:
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        storage_type, key, _location, numel = pid[1:5]
        if storage_type not in _STORAGE_DTYPES or not isinstance(key, str):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        if not isinstance(numel, int) or numel < 0:
            raise pickle.UnpicklingError(f"bad storage size {numel!r}")
        if len(pid) == 6 and pid[5] is not None:
            raise ValueError("storage views (files from torch < 0.4) are not supported")
        if key not in self._storages:
            self._storages[key] = self._load_storage(storage_type, key, numel)
            self._storage_bytes += self._storages[key].nbytes
        return self._storages[key]


def _load_zip_checkpoint(f: IO[bytes], source: str) -> Any:
    """The zip format (torch >= 1.6): ``<top>/data.pkl``, ``<top>/data/<key>``, ``<top>/byteorder``."""
    with zipfile.ZipFile(f) as archive:
        _check_decompressed_size(archive)
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise ValueError("the archive has no <folder>/data.pkl")
        top = pickles[0][: -len("data.pkl")]
        # Files from torch < 1.10 have no byteorder record; they are little-endian.
        names = set(archive.namelist())
        byteorder = (
            archive.read(f"{top}byteorder").decode() if f"{top}byteorder" in names else "little"
        )
        if byteorder not in ("little", "big"):
            raise ValueError(f"unknown byte order {byteorder!r}")

        def load_storage(storage_type: str, key: str, numel: int) -> np.ndarray:
            info = archive.getinfo(f"{top}data/{key}")
            itemsize = _storage_itemsize(storage_type)
            if info.file_size != numel * itemsize:
                raise ValueError(
                    f"storage {key!r} holds {info.file_size} bytes, expected {numel} x {itemsize}"
                )
            with archive.open(info) as member:
                raw = _read_member_rest(member, numel * itemsize, f"storage {key!r}")
            return _storage_array(storage_type, raw, byteorder)

        with archive.open(pickles[0]) as data_pkl:
            return _TorchUnpickler(data_pkl, source, load_storage).load()


def _load_legacy_checkpoint(f: IO[bytes], source: str) -> Any:
    """The legacy format: magic, protocol and sys_info pickles, the main pickle, the list of
    storage keys, then per key an 8-byte element count and the raw bytes (always
    little-endian: torch swaps on big-endian machines before writing).

    The storages follow the pickle that uses them, and their sizes depend on dtypes named
    inside it. So the main pickle is read twice: first over zero-filled stand-ins, to learn
    each storage's type and size, then for real over the decoded storages. The stand-ins
    together may not declare more bytes than the whole file holds.
    """

    def read_small_pickle() -> Any:
        return RestrictedUnpickler(f, {}, source=source).load()

    if read_small_pickle() != _LEGACY_MAGIC:
        raise ValueError("no PyTorch magic number at the start")
    if read_small_pickle() != _LEGACY_PROTOCOL:
        raise ValueError("unsupported legacy protocol version")
    read_small_pickle()  # sys_info: byte order and C type sizes of the writer, unused here
    main_start = f.tell()
    file_size = os.fstat(f.fileno()).st_size

    layout: dict[str, tuple[str, int]] = {}
    declared_bytes = 0

    def zero_storage(storage_type: str, key: str, numel: int) -> np.ndarray:
        nonlocal declared_bytes
        declared_bytes += numel * _storage_itemsize(storage_type)
        if declared_bytes > file_size:
            raise ValueError(
                f"its storages declare {declared_bytes:,} bytes, more than the file's {file_size:,}"
            )
        layout[key] = (storage_type, numel)
        return np.zeros(numel, dtype=_STORAGE_DTYPES[storage_type][1])

    _TorchUnpickler(f, source, zero_storage).load()
    storages = {}
    for key in read_small_pickle():
        storage_type, numel = layout[key]
        count = int.from_bytes(f.read(8), "little")
        if count != numel:
            raise ValueError(f"storage {key!r} has {count} elements, expected {numel}")
        raw = _read_exactly(f, numel * _storage_itemsize(storage_type), f"storage {key!r}")
        storages[key] = _storage_array(storage_type, raw, "little")

    f.seek(main_start)
    return _TorchUnpickler(f, source, lambda _type, key, _numel: storages[key]).load()


def load_torch_checkpoint(path: str | os.PathLike) -> Any:
    """Read a PyTorch ``.pth``/``.pt`` file without importing torch; tensors become arrays.

    Both of torch's formats are read: the zip archive (the default since torch 1.6) and
    the legacy stream (``_use_new_zipfile_serialization=False``). A saved state dict comes
    back as a ``dict[str, np.ndarray]`` in torch's key order (an ``OrderedDict``, with
    torch's ``_metadata`` attribute if it had one); a checkpoint holding more, such as
    ``{"state_dict": {...}, "epoch": 3}``, comes back with the same nesting, tensors as
    contiguous arrays with torch's dtype (float16 and bfloat16 become float32) and other
    values as plain Python. Big-endian files are byte-swapped.

    The file may name only ``collections.OrderedDict``, torch's tensor/parameter rebuild
    functions and its storage classes; anything else (``os.system``, ``builtins.eval``,
    an ``nn.Module`` class), or a BUILD aimed at one of those, raises
    :class:`UnsafePickleError` (a ``ValueError``) naming the global and the file, before
    anything is called or altered.

    Allocation is bounded by the file (see the module docstring): each storage must be
    exactly its declared size, a tensor may not have more elements than its storage
    (no zero or overlapping strides), and all tensors together may hold at most twice
    the storages' bytes (64 MiB at least).

    Raises ``FileNotFoundError`` if ``path`` does not exist and ``ValueError`` naming the
    file if it is truncated, corrupted or not a PyTorch checkpoint.
    """
    source = os.fspath(path)
    with open(path, "rb") as f:
        is_zip = f.read(4) == b"PK\x03\x04"
        f.seek(0)
        try:
            if is_zip:
                return _load_zip_checkpoint(f, source)
            return _load_legacy_checkpoint(f, source)
        except UnsafePickleError:
            raise
        except _CORRUPT_FILE_ERRORS as exc:
            raise ValueError(
                f"{source}: corrupted or not a PyTorch checkpoint ({type(exc).__name__}: {exc})"
            ) from None


# ---------------------------------------------------------------------------------------
# PyTorch .pth files and safetensors, written without torch
# ---------------------------------------------------------------------------------------

# NumPy dtype -> torch storage class; torch.load rebuilds each tensor with its dtype.
_TORCH_STORAGES = {
    np.dtype("f4"): "FloatStorage",
    np.dtype("f8"): "DoubleStorage",
    np.dtype("f2"): "HalfStorage",
    np.dtype("i8"): "LongStorage",
    np.dtype("i4"): "IntStorage",
    np.dtype("i2"): "ShortStorage",
    np.dtype("i1"): "CharStorage",
    np.dtype("u1"): "ByteStorage",
    np.dtype("?"): "BoolStorage",
}


class _PickleWriter:
    """The few pickle opcodes (protocol 2) a state dict of tensors needs, written by hand.

    ``pickle.Pickler`` cannot name ``torch._utils._rebuild_tensor_v2`` without importing
    torch, so the stream is spelled out: ``OrderedDict`` of ``_rebuild_tensor_v2(storage,
    offset, size, stride, requires_grad, hooks)``, each storage a persistent id
    ``("storage", torch.<Type>Storage, key, "cpu", numel)`` naming ``data/<key>``.
    """

    def __init__(self) -> None:
        self.out = bytearray(b"\x80\x02")  # PROTO 2

    def global_(self, module: str, name: str) -> None:
        self.out += f"c{module}\n{name}\n".encode()

    def text(self, value: str) -> None:
        data = value.encode("utf-8")
        self.out += b"X" + len(data).to_bytes(4, "little") + data  # BINUNICODE

    def integer(self, value: int) -> None:
        if 0 <= value < 1 << 31:
            self.out += b"J" + value.to_bytes(4, "little")  # BININT
        else:
            data = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
            self.out += b"\x8a" + bytes([len(data)]) + data  # LONG1

    def int_tuple(self, values: tuple[int, ...]) -> None:
        self.out += b"("  # MARK
        for v in values:
            self.integer(v)
        self.out += b"t"  # TUPLE

    def empty_ordered_dict(self) -> None:
        self.global_("collections", "OrderedDict")
        self.out += b")R"  # EMPTY_TUPLE, REDUCE

    def tensor(self, key: str, array: np.ndarray) -> None:
        self.global_("torch._utils", "_rebuild_tensor_v2")
        self.out += b"(("  # MARK (the call's arguments), MARK (the persistent id)
        self.text("storage")
        self.global_("torch", _TORCH_STORAGES[array.dtype])
        self.text(key)
        self.text("cpu")
        self.integer(array.size)
        self.out += b"tQ"  # TUPLE, BINPERSID
        self.integer(0)  # storage offset
        self.int_tuple(array.shape)
        self.int_tuple(tuple(s // array.itemsize for s in array.strides))  # C order
        self.out += b"\x89"  # NEWFALSE: requires_grad
        self.empty_ordered_dict()  # backward hooks
        self.out += b"tR"  # TUPLE, REDUCE


def save_torch_checkpoint(model_or_state: Any, path: str | os.PathLike) -> None:
    """Write a state dict in PyTorch's zip format, without torch, atomically.

    ``torch.load(path, weights_only=True)`` reads it back as an ``OrderedDict`` of tensors
    with the same keys, shapes and dtypes (float32, float64, float16, the integer types
    and bool; ``num_batches_tracked`` stays int64), and ``model.load_state_dict`` takes it.
    """
    arrays = _state_arrays(model_or_state, "biuf", "save_torch_checkpoint()")
    # native byte order, C order; np.array keeps 0-d arrays 0-d (ascontiguousarray would not)
    arrays = {k: np.array(a, dtype=a.dtype.newbyteorder("="), order="C") for k, a in arrays.items()}
    unsupported = [f"{k} ({a.dtype})" for k, a in arrays.items() if a.dtype not in _TORCH_STORAGES]
    if unsupported:
        raise TypeError(f"no PyTorch storage type for {', '.join(unsupported)}")
    pickle_ = _PickleWriter()
    pickle_.empty_ordered_dict()
    if arrays:
        pickle_.out += b"("  # MARK
        for index, (key, array) in enumerate(arrays.items()):
            pickle_.text(key)
            pickle_.tensor(str(index), array)
        pickle_.out += b"u"  # SETITEMS
    pickle_.out += b"."  # STOP
    with atomic_write(path, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", bytes(pickle_.out))
        archive.writestr("archive/byteorder", "little" if np.little_endian else "big")
        for index, array in enumerate(arrays.values()):
            archive.writestr(f"archive/data/{index}", array.tobytes())
        archive.writestr("archive/version", "3\n")


def _safetensors_numpy() -> Any:
    try:
        import safetensors.numpy
    except ImportError:
        raise ImportError(
            "safetensors files need the safetensors package: pip install 'nnscratch[safetensors]'"
        ) from None
    return safetensors.numpy


def save_safetensors(model_or_state: Any, path: str | os.PathLike) -> None:
    """Write a state dict as a ``.safetensors`` file (needs the ``safetensors`` package)."""
    arrays = _state_arrays(model_or_state, "biuf", "save_safetensors()")
    data = _safetensors_numpy().save({k: np.array(a, order="C") for k, a in arrays.items()})
    with atomic_write(path, "wb") as f:
        f.write(data)


def load_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a ``.safetensors`` state dict (timm's and torchvision's names are nnscratch's).

    The safetensors format is a JSON table of offsets and a byte buffer; the library
    checks the table against the file's size before it reads. Raises ``ValueError``
    naming the file if it is not a readable safetensors file.
    """
    reader = _safetensors_numpy()
    with open(path, "rb") as f:
        data = f.read()
    try:
        return dict(reader.load(data))
    except Exception as exc:  # the library raises its own SafetensorError on bad files
        raise ValueError(f"{os.fspath(path)}: not a readable safetensors file ({exc})") from None

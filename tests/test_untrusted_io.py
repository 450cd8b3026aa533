"""Crafted PyTorch ``.pth`` and nnscratch ``.npz`` files: bounded memory, one clear error.

Each malicious file is made here, by hand (no torch needed), and read in a child process
whose peak memory is measured (tests/child.py). Before these limits the same files made
the reader allocate 1.6-2 GB; now it must refuse them with one ``ValueError`` that names
the file and the cause, at about the memory of a bare interpreter.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import zipfile
from pathlib import Path

import numpy as np
import pytest
from child import python_baseline_mb, run_child

import nnscratch.io as nnio

# The old readers reached 1.6-2 GB on these files; refusing them must cost far less.
MARGIN_MB = 300
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


@pytest.fixture(scope="module")
def baseline_mb() -> float:
    return python_baseline_mb()


def read_in_child(reader: str, path: Path) -> tuple[str, float]:
    """Run ``reader(path)`` in a fresh interpreter; returns its ValueError message and peak MiB."""
    module, function = reader.rsplit(".", 1)
    code = (
        "import sys\n"
        f"from {module} import {function}\n"
        "try:\n"
        f"    {function}(sys.argv[1])\n"
        "except ValueError as error:\n"
        "    print(error)\n"
        "else:\n"
        "    print('loaded without error')\n"
    )
    result = run_child(["-c", code, str(path)])
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip(), result.peak_mb


def assert_refused(reader: str, path: Path, cause: str, baseline_mb: float) -> None:
    message, peak_mb = read_in_child(reader, path)
    assert str(path) in message and cause in message, message
    assert "\n" not in message
    assert peak_mb < baseline_mb + MARGIN_MB, (peak_mb, baseline_mb)


# --- hand-written torch pickles ----------------------------------------------------------


def piece(value) -> bytes:
    """The opcodes that push ``value`` (a plain int, str or tuple), without PROTO and STOP."""
    return pickletools.optimize(pickle.dumps(value, protocol=2))[2:-1]


def global_op(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def tensor_op(key: str, numel: int, size: tuple, stride: tuple, offset: int = 0) -> bytes:
    """Opcodes for ``_rebuild_tensor_v2(<FloatStorage key>, offset, size, stride, ...)``."""
    storage = (
        b"("
        + piece("storage")
        + global_op("torch", "FloatStorage")
        + piece(key)
        + piece("cpu")
        + piece(numel)
        + b"tQ"  # MARK ... TUPLE, BINPERSID
    )
    hooks = global_op("collections", "OrderedDict") + b")R"
    args = b"(" + storage + piece(offset) + piece(size) + piece(stride) + b"\x89" + hooks + b"t"
    return global_op("torch._utils", "_rebuild_tensor_v2") + args + b"R"


def state_dict_pickle(tensors: dict[str, bytes]) -> bytes:
    """``{name: tensor}`` as a protocol-2 pickle (EMPTY_DICT, MARK, ..., SETITEMS, STOP)."""
    items = b"".join(piece(name) + op for name, op in tensors.items())
    return b"\x80\x02}(" + items + b"u."


def write_zip_pth(
    path: Path, data_pkl: bytes, storages: dict[str, bytes] | None = None, **kw
) -> None:
    with zipfile.ZipFile(path, "w", **kw) as archive:
        archive.writestr("archive/data.pkl", data_pkl)
        archive.writestr("archive/byteorder", "little")
        for key, raw in (storages or {}).items():
            archive.writestr(f"archive/data/{key}", raw)


def write_zeros_member(archive: zipfile.ZipFile, name: str, prefix: bytes, nbytes: int) -> None:
    """A deflated member: ``prefix`` then ``nbytes`` zero bytes, written in chunks."""
    chunk = bytes(1 << 24)
    with archive.open(name, "w", force_zip64=True) as member:
        member.write(prefix)
        for start in range(0, nbytes, len(chunk)):
            member.write(chunk[: min(len(chunk), nbytes - start)])


# --- .pth: zip format --------------------------------------------------------------------

READ_PTH = "nnscratch.io.load_torch_checkpoint"


def test_pth_zero_stride_tensor_is_refused(tmp_path, baseline_mb):
    # One float in the file; the tensor views it 500 million times (1.9 GB before).
    path = tmp_path / "stride0.pth"
    write_zip_pth(
        path, state_dict_pickle({"w": tensor_op("0", 1, (500_000_000,), (0,))}), {"0": bytes(4)}
    )
    assert_refused(READ_PTH, path, "stride (0,)", baseline_mb)


def test_pth_many_tensors_sharing_one_storage_are_refused(tmp_path, baseline_mb):
    # 2,000 full views of one deflated 1 MiB storage would be 2 GB of copies.
    numel = 1 << 18
    tensors = {f"t{i}": tensor_op("0", numel, (numel,), (1,)) for i in range(2000)}
    path = tmp_path / "shared.pth"
    write_zip_pth(
        path, state_dict_pickle(tensors), {"0": bytes(4 * numel)}, compression=zipfile.ZIP_DEFLATED
    )
    assert path.stat().st_size < 100_000
    assert_refused(READ_PTH, path, "bytes of storage", baseline_mb)


def test_pth_deflated_storage_bomb_is_refused(tmp_path, baseline_mb):
    numel = 1 << 28  # 1 GiB of float zeros, deflated to a few MB
    path = tmp_path / "bomb.pth"
    write_zip_pth(path, state_dict_pickle({"w": tensor_op("0", numel, (numel,), (1,))}))
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        write_zeros_member(archive, "archive/data/0", b"", 4 * numel)
    assert_refused(READ_PTH, path, "decompress", baseline_mb)


def test_pth_storage_size_must_match_its_member_before_reading(tmp_path):
    path = tmp_path / "short.pth"
    write_zip_pth(path, state_dict_pickle({"w": tensor_op("0", 10, (10,), (1,))}), {"0": bytes(12)})
    with pytest.raises(ValueError, match=r"short\.pth: .*storage '0' holds 12 bytes, expected 10"):
        nnio.load_torch_checkpoint(path)


def test_pth_two_views_of_one_storage_still_load(tmp_path):
    # A tensor and its transpose share one storage: a legitimate file, 2x its storage.
    values = np.arange(6, dtype=np.float32)
    tensors = {"a": tensor_op("0", 6, (2, 3), (3, 1)), "a_t": tensor_op("0", 6, (3, 2), (1, 3))}
    path = tmp_path / "views.pth"
    write_zip_pth(path, state_dict_pickle(tensors), {"0": values.tobytes()})
    loaded = nnio.load_torch_checkpoint(path)
    np.testing.assert_array_equal(loaded["a"], values.reshape(2, 3))
    np.testing.assert_array_equal(loaded["a_t"], values.reshape(2, 3).T)


# --- .pth: legacy format -----------------------------------------------------------------


def test_legacy_pth_listing_storages_it_never_stores_is_refused(tmp_path, baseline_mb):
    # 400 tensors on 400 storages of 1M floats each; the file is only ~4 MB long, so
    # each storage alone fits in it, but together they would be 1.6 GB.
    numel = 1 << 20
    tensors = {f"t{i}": tensor_op(str(i), numel, (numel,), (1,)) for i in range(400)}
    sys_info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {}}
    header = b"".join(pickle.dumps(x, protocol=2) for x in (LEGACY_MAGIC, 1001, sys_info))
    keys = pickle.dumps([str(i) for i in range(400)], protocol=2)
    path = tmp_path / "legacy.pth"
    path.write_bytes(header + state_dict_pickle(tensors) + keys + bytes(4 * numel + 64))
    assert_refused(READ_PTH, path, "more than the file", baseline_mb)


# --- .npz state dicts and checkpoints ----------------------------------------------------


def npy_header(shape: tuple, dtype: str) -> bytes:
    buffer = io.BytesIO()
    header = {"descr": dtype, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def npz_bomb(tmp_path_factory) -> Path:
    """An .npz whose one member inflates from a few MB to 1.5 GB of zeros."""
    nbytes = 1536 << 20
    path = tmp_path_factory.mktemp("bomb") / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        write_zeros_member(archive, "model/conv1.weight.npy", npy_header((nbytes,), "|u1"), nbytes)
    return path


@pytest.mark.parametrize(
    "reader",
    [
        "nnscratch.io.load",
        "nnscratch.training.checkpoint.load_checkpoint",
        "nnscratch.training.checkpoint.load_weights",
    ],
)
def test_npz_zip_bomb_is_refused(npz_bomb, reader, baseline_mb):
    assert_refused(reader, npz_bomb, "decompress", baseline_mb)


def test_npz_header_must_match_the_member_size(tmp_path):
    path = tmp_path / "lying.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("w.npy", npy_header((1000, 1000), "<f4") + bytes(16))
    with pytest.raises(ValueError, match=r"lying\.npz: .*'w'.*\(1000, 1000\)"):
        nnio.load(path)


def test_npz_object_arrays_are_refused(tmp_path):
    path = tmp_path / "objects.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("w.npy", npy_header((1,), "|O") + pickle.dumps([1]))
    with pytest.raises(ValueError, match=r"objects\.npz: .*'w'.*object"):
        nnio.load(path)


def test_npz_compressed_trained_weights_still_load(tmp_path):
    rng = np.random.default_rng(0)
    state = {
        "conv.weight": rng.standard_normal((64, 64, 3, 3)).astype(np.float32),
        "bn.num_batches_tracked": np.array(5),
        "fortran": np.asfortranarray(np.eye(3)),
    }
    np.savez_compressed(tmp_path / "w.npz", **state)
    loaded = nnio.load(tmp_path / "w.npz")
    assert list(loaded) == list(state)
    for key, value in state.items():
        np.testing.assert_array_equal(loaded[key], value)
        assert loaded[key].dtype == value.dtype and loaded[key].flags.writeable

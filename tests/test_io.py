"""Tests for nnscratch.io: .npz state dicts and the torch-free .pth reader.

The .pth fixtures were written by real PyTorch (see tests/fixtures/README.md); their
expected values sit beside them in a plain .npz, so these tests need no torch.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import nnscratch.io as nnio
from nnscratch.utils.safe_pickle import UnsafePickleError

FIXTURES = Path(__file__).parent / "fixtures"
TORCH_FIXTURES = [FIXTURES / "tiny_zip.pth", FIXTURES / "tiny_legacy.pth"]

# Element sizes of torch's storage classes, for rewriting fixture archives in tests.
STORAGE_ITEMSIZE = {
    "FloatStorage": 4,
    "DoubleStorage": 8,
    "HalfStorage": 2,
    "BFloat16Storage": 2,
    "LongStorage": 8,
    "IntStorage": 4,
    "ShortStorage": 2,
    "CharStorage": 1,
    "ByteStorage": 1,
    "BoolStorage": 1,
}
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def make_state() -> dict[str, np.ndarray]:
    """A small state dict in a deliberately unsorted key order, with awkward dtypes."""
    rng = np.random.default_rng(0)
    return {
        "fc.bias": rng.standard_normal(3),  # float64
        "conv1.weight": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "bn1.running_mean": rng.standard_normal(4).astype(np.float32),
        "bn1.num_batches_tracked": np.array(7, dtype=np.int64),  # 0-d
        "mask": np.array([True, False]),
        "pixels": np.arange(5, dtype=np.uint8),
    }


def assert_same_state(got: dict, expected: dict) -> None:
    assert list(got) == list(expected)
    for key, want in expected.items():
        assert isinstance(got[key], np.ndarray), key
        assert got[key].dtype == want.dtype, key
        assert got[key].shape == want.shape, key
        np.testing.assert_array_equal(got[key], want, err_msg=key)


# --- .npz state dicts --------------------------------------------------------------------


def test_npz_round_trip_preserves_keys_order_dtypes_and_values(tmp_path):
    state = make_state()
    nnio.save(state, tmp_path / "w.npz")
    loaded = nnio.load(tmp_path / "w.npz")
    assert_same_state(loaded, state)
    assert loaded["bn1.num_batches_tracked"].ndim == 0


def test_save_accepts_a_model_and_writes_exactly_the_given_name(tmp_path):
    class Model:
        def state_dict(self):
            return make_state()

    nnio.save(Model(), tmp_path / "model.weights")
    assert os.listdir(tmp_path) == ["model.weights"]
    assert_same_state(nnio.load(tmp_path / "model.weights"), make_state())


def test_save_is_atomic_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "w.npz"
    nnio.save({"a": np.ones(3)}, path)
    before = path.read_bytes()

    def failing_savez(file, *args, **kwargs):
        file.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError, match="disk full"):
        nnio.save({"b": np.zeros(2)}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["w.npz"]


@pytest.mark.parametrize(
    ("state", "error", "pattern"),
    [
        ({3: np.ones(2)}, TypeError, "key 3"),
        ({"w": b"bytes"}, TypeError, "'w'"),
        ({"w": np.array([object()])}, TypeError, "'w'"),
        ({"w": [[1.0, 2.0], [3.0]]}, ValueError, "'w'"),
        ({"file": np.ones(2)}, ValueError, "'file'"),
        ([np.ones(2)], TypeError, "mapping"),
    ],
)
def test_save_rejects_bad_state_naming_the_key(tmp_path, state, error, pattern):
    with pytest.raises(error, match=pattern):
        nnio.save(state, tmp_path / "w.npz")
    assert os.listdir(tmp_path) == []


def test_load_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothere\.npz"):
        nnio.load(tmp_path / "nothere.npz")


def _truncated_npz(tmp_path: Path) -> bytes:
    nnio.save(make_state(), tmp_path / "good.npz")
    data = (tmp_path / "good.npz").read_bytes()
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    "make_bytes",
    [
        _truncated_npz,
        lambda tmp_path: b"",
        lambda tmp_path: b"this is not a zip file at all" * 10,
        lambda tmp_path: pickle.dumps({"w": [1.0, 2.0]}),
        lambda tmp_path: _npy_bytes(np.ones(3)),
    ],
    ids=["truncated", "empty", "text", "pickle", "single-npy"],
)
def test_load_bad_file_raises_value_error_naming_it(tmp_path, make_bytes):
    path = tmp_path / "bad.npz"
    path.write_bytes(make_bytes(tmp_path))
    with pytest.raises(ValueError, match=r"bad\.npz: corrupted or not an nnscratch state file"):
        nnio.load(path)


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


# --- PyTorch checkpoints: committed fixtures ---------------------------------------------


def flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    """``{"a": {"b": x}}`` -> ``{"a/b": x}``, keeping arrays only (the .npz fixture layout)."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}/"))
        elif isinstance(value, np.ndarray):
            flat[f"{prefix}{key}"] = value
    return flat


def expected_fixture_arrays() -> dict[str, np.ndarray]:
    """The fixture tensors as ``t.numpy()`` gave them; the reader returns half as float32."""
    expected = nnio.load(FIXTURES / "tiny_expected.npz")
    return {k: v.astype(np.float32) if v.dtype == np.float16 else v for k, v in expected.items()}


@pytest.mark.parametrize("path", TORCH_FIXTURES, ids=lambda p: p.stem)
def test_torch_fixture_matches_numpy_values(path):
    assert path.stat().st_size < 50_000
    checkpoint = nnio.load_torch_checkpoint(path)
    assert list(checkpoint) == ["state_dict", "extras", "epoch", "tag"]
    assert checkpoint["epoch"] == 3
    assert checkpoint["tag"] == "tiny"
    assert_same_state(flatten(checkpoint), expected_fixture_arrays())

    state = checkpoint["state_dict"]
    assert isinstance(state, collections.OrderedDict)
    assert state._metadata["bn1"] == {"version": 2}  # torch's attribute survives
    assert "_metadata" not in state
    assert state["bn1.num_batches_tracked"].shape == ()
    assert state["bn1.num_batches_tracked"] == 3
    assert state["conv1.weight"].shape == (4, 3, 3, 3)
    for array in flatten(checkpoint).values():
        assert array.flags.c_contiguous and array.flags.writeable and array.base is None


@pytest.mark.parametrize("path", TORCH_FIXTURES, ids=lambda p: p.stem)
def test_torch_reader_does_not_import_torch(path):
    code = (
        "import sys, nnscratch.io as nnio\n"
        f"nnio.load_torch_checkpoint({str(path)!r})\n"
        "assert 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _storage_itemsizes(data_pkl: bytes) -> dict[str, int]:
    """Map each storage key named in a trusted torch ``data.pkl`` to its element size."""
    itemsizes = {}

    class Recorder(pickle.Unpickler):
        def find_class(self, module, name):
            if name.endswith("Storage"):
                return name
            return collections.OrderedDict if name == "OrderedDict" else lambda *args: None

        def persistent_load(self, pid):
            itemsizes[pid[2]] = STORAGE_ITEMSIZE[pid[1]]

    Recorder(io.BytesIO(data_pkl)).load()
    return itemsizes


def test_big_endian_zip_archive_is_byte_swapped(tmp_path):
    # Rewrite the zip fixture as a big-endian machine would have written it.
    big = tmp_path / "big.pth"
    with zipfile.ZipFile(TORCH_FIXTURES[0]) as src, zipfile.ZipFile(big, "w") as dst:
        top = src.namelist()[0].split("/")[0]
        itemsizes = _storage_itemsizes(src.read(f"{top}/data.pkl"))
        for name in src.namelist():
            data = src.read(name)
            if name == f"{top}/byteorder":
                data = b"big"
            elif name.startswith(f"{top}/data/"):
                itemsize = itemsizes[name.rsplit("/", 1)[1]]
                data = np.frombuffer(data, f"<u{itemsize}").astype(f">u{itemsize}").tobytes()
            dst.writestr(name, data)
    assert_same_state(flatten(nnio.load_torch_checkpoint(big)), expected_fixture_arrays())


def test_torch_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothere\.pth"):
        nnio.load_torch_checkpoint(tmp_path / "nothere.pth")


def _truncated(path: Path) -> bytes:
    data = path.read_bytes()
    return data[: len(data) * 2 // 3]


@pytest.mark.parametrize(
    "make_bytes",
    [
        lambda: _truncated(TORCH_FIXTURES[0]),
        lambda: _truncated(TORCH_FIXTURES[1]),
        lambda: b"",
        lambda: b"not a checkpoint" * 10,
        lambda: (FIXTURES / "tiny_expected.npz").read_bytes(),
        lambda: pickle.dumps({"w": 1}, protocol=2),
    ],
    ids=["truncated-zip", "truncated-legacy", "empty", "text", "npz", "plain-pickle"],
)
def test_torch_bad_file_raises_value_error_naming_it(tmp_path, make_bytes):
    path = tmp_path / "bad.pth"
    path.write_bytes(make_bytes())
    with pytest.raises(ValueError, match=r"bad\.pth: corrupted or not a PyTorch checkpoint"):
        nnio.load_torch_checkpoint(path)


def test_tensor_reaching_past_its_storage_is_refused():
    storage = np.arange(4, dtype=np.float32)
    with pytest.raises(ValueError, match="holds 2 past the offset"):
        nnio._tensor_view(storage, 2, (3,), (1,))
    with pytest.raises(ValueError, match="past its storage"):
        nnio._tensor_view(storage, 0, (2, 2), (1, 3))
    with pytest.raises(ValueError, match="overlapping or zero strides"):
        nnio._tensor_view(storage, 0, (5,), (0,))


# --- PyTorch checkpoints: malicious pickles ----------------------------------------------


class RunsCommand:
    """Unpickling this calls ``os.system(command)``: the classic pickle exploit."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _zip_checkpoint(payload: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/version", "3\n")
    return buffer.getvalue()


def _legacy_checkpoint(payload: bytes) -> bytes:
    sys_info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {}}
    header = b"".join(pickle.dumps(x, protocol=2) for x in (LEGACY_MAGIC, 1001, sys_info))
    return header + payload + pickle.dumps([], protocol=2)


@pytest.mark.parametrize("wrap", [_zip_checkpoint, _legacy_checkpoint], ids=["zip", "legacy"])
def test_pickle_calling_os_system_is_refused(tmp_path, wrap):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"w": RunsCommand(f"touch {marker}")}, protocol=2)
    path = tmp_path / "evil.pth"
    path.write_bytes(wrap(payload))
    with pytest.raises(UnsafePickleError) as info:
        nnio.load_torch_checkpoint(path)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert re.search(r"\b(os|posix)\.system\b", message), message
    assert str(path) in message
    assert not marker.exists()


@pytest.mark.parametrize(
    "module_name",
    ["builtins eval", "subprocess Popen", "torch.nn.modules.linear Linear", "torch load"],
)
@pytest.mark.parametrize("wrap", [_zip_checkpoint, _legacy_checkpoint], ids=["zip", "legacy"])
def test_other_globals_are_refused(tmp_path, module_name, wrap):
    module, name = module_name.split()
    # Protocol 2 opcodes: GLOBAL module name, EMPTY_TUPLE, REDUCE (call it), STOP.
    payload = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b")R."
    path = tmp_path / "evil.pth"
    path.write_bytes(wrap(payload))
    with pytest.raises(UnsafePickleError, match=rf"{re.escape(f'{module}.{name}')}"):
        nnio.load_torch_checkpoint(path)


def test_legacy_header_pickles_are_restricted_too(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps(RunsCommand(f"touch {marker}"), protocol=2))
    with pytest.raises(UnsafePickleError, match="system"):
        nnio.load_torch_checkpoint(path)
    assert not marker.exists()


# --- Optional: against a live torch ------------------------------------------------------


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_against_live_torch(tmp_path, zip_format):
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 5, 3), torch.nn.BatchNorm2d(5), torch.nn.Flatten(), torch.nn.Linear(5, 2)
    )
    model.train()
    with torch.no_grad():
        model[:2](torch.randn(4, 3, 5, 5))
    grid = torch.randn(5, 7, dtype=torch.float64)
    tensors = {
        **model.state_dict(),
        "transposed": grid.t(),
        "strided": grid[1:, ::2],
        "half": torch.randn(3).half(),
        "bfloat16": torch.randn(3).bfloat16(),
    }
    path = tmp_path / "live.pth"
    torch.save(tensors, path, _use_new_zipfile_serialization=zip_format)
    loaded = nnio.load_torch_checkpoint(path)
    expected = {
        key: t.float().numpy() if t.dtype in (torch.half, torch.bfloat16) else t.numpy()
        for key, t in tensors.items()
    }
    assert_same_state(loaded, expected)

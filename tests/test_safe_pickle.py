"""RestrictedUnpickler: a pickle may build new objects but never alter existing ones.

The pickle BUILD opcode sets the state of the object below it on the stack. Pointed at
an allowlisted global (a function, a class) it would change that global for the rest of
the process; pointed at a NumPy dtype it can rewrite a dtype's flags. These pickles are
written opcode by opcode here.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile

import numpy as np
import pytest
from child import run_child

import nnscratch.io as nnio
from nnscratch.data import cifar
from nnscratch.utils.safe_pickle import RestrictedUnpickler, UnsafePickleError


def global_op(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def build_op(state) -> bytes:
    """Push ``state`` and BUILD it into the object below it, then STOP."""
    return pickle.dumps(state, protocol=2)[2:-1] + b"b."


def as_zip_pth(data_pkl: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", data_pkl)
    return buffer.getvalue()


def load_numpy_pickle(data: bytes):
    return RestrictedUnpickler(io.BytesIO(data), cifar._array_globals(), source="batch").load()


@pytest.mark.parametrize(
    ("target", "module", "name"),
    [
        (nnio._rebuild_parameter, "torch._utils", "_rebuild_parameter"),
        (collections.OrderedDict, "collections", "OrderedDict"),
    ],
    ids=["function", "class"],
)
@pytest.mark.parametrize("state", [(None, {"__name__": "HACKED"}), {"marker": 1}])
def test_torch_pickle_cannot_alter_an_allowlisted_global(tmp_path, target, module, name, state):
    before = dict(vars(target))
    path = tmp_path / "evil.pth"
    path.write_bytes(as_zip_pth(b"\x80\x02" + global_op(module, name) + build_op(state)))
    try:
        with pytest.raises(UnsafePickleError, match=r"evil\.pth: .*BUILD") as info:
            nnio.load_torch_checkpoint(path)
        assert name in str(info.value)
        assert target.__name__ == name and dict(vars(target)) == before
    finally:  # undo what an unguarded unpickler did, so later tests are unaffected
        if target.__name__ != name:
            target.__name__ = name
        for key in set(vars(target)) - set(before):
            delattr(target, key)


def test_cifar_pickle_cannot_alter_numpy_functions():
    frombuffer = cifar._array_globals()[("numpy._core.numeric", "_frombuffer")]
    data = b"\x80\x02" + global_op("numpy._core.numeric", "_frombuffer")
    try:
        with pytest.raises(UnsafePickleError, match=r"batch: .*BUILD"):
            cifar.load_pickle(data + build_op((None, {"__name__": "HACKED"})), "batch")
        assert frombuffer.__name__ == "_frombuffer"
    finally:
        frombuffer.__name__ = "_frombuffer"


DTYPE_F8 = global_op("numpy", "dtype") + pickle.dumps(("f8", False, True), protocol=2)[2:-1] + b"R"


@pytest.mark.parametrize(
    ("data", "cause"),
    [
        # A float64 dtype flagged as holding Python objects: its bytes would be used as
        # object pointers.
        (DTYPE_F8 + build_op((3, "<", None, None, None, -1, -1, 63)), "dtype"),
        # np.dtype("f8", copy=False) is NumPy's own float64, shared by the whole process.
        (
            DTYPE_F8.replace(b"\x89\x88", b"\x89\x89")
            + build_op((3, "<", None, None, None, -1, -1, 0)),
            "shared",
        ),
        # A datetime dtype's state that makes NumPy 2.4 crash.
        (DTYPE_F8.replace(b"f8", b"M8") + build_op((3, "<", None, None, None, -1, -1, 0)), "dtype"),
    ],
    ids=["object-flag", "singleton", "datetime"],
)
def test_crafted_dtype_state_is_refused(data, cause):
    code = (
        "import io, sys\n"
        "from nnscratch.data import cifar\n"
        "from nnscratch.utils.safe_pickle import RestrictedUnpickler\n"
        "data = bytes.fromhex(sys.argv[1])\n"
        "try:\n"
        "    RestrictedUnpickler(io.BytesIO(data), cifar._array_globals(), source='batch').load()\n"
        "except ValueError as error:\n"
        "    print(error)\n"
    )  # a child process: with the datetime state, NumPy itself segfaults
    result = run_child(["-c", code, (b"\x80\x02" + data).hex()])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "batch: " in result.stdout and "BUILD" in result.stdout, result.stdout
    assert cause in result.stdout


@pytest.mark.parametrize("protocol", [2, 5])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(6, dtype=">f8").reshape(2, 3),
        np.asfortranarray(np.eye(3, dtype=np.float32)),
        np.array([b"ab", b"c"]),
        np.array(["x", "yz"]),
        np.arange(4, dtype=np.uint8),
    ],
    ids=["big-endian", "fortran", "bytes", "str", "uint8"],
)
def test_numpy_pickles_still_load_as_pickle_loads_them(array, protocol):
    data = pickle.dumps({"data": array, "labels": [1, 2]}, protocol=protocol)
    loaded, expected = load_numpy_pickle(data), pickle.loads(data)
    assert loaded["labels"] == [1, 2]
    assert loaded["data"].dtype == expected["data"].dtype
    np.testing.assert_array_equal(loaded["data"], array)


def test_builtin_dtypes_are_unchanged_after_loading_numpy_pickles():
    before = {c: np.dtype(c).descr for c in "?bhilqBHILQefdgFDG"}
    load_numpy_pickle(pickle.dumps(np.arange(3, dtype=">i4"), protocol=2))
    assert {c: np.dtype(c).descr for c in before} == before

"""CIFAR-10/100 readers on tiny tarballs made in the official format inside the test."""

from __future__ import annotations

import io
import os
import pickle
import struct
import tarfile

import numpy as np
import pytest

from nnscratch.data import cifar
from nnscratch.data.cifar import cifar10, cifar100, read_tar_members
from nnscratch.utils.safe_pickle import UnsafePickleError


class Py2StylePickler(pickle._Pickler):
    """Writes protocol 2 as Python 2 + NumPy 1 did for the official files: ``bytes`` as
    (SHORT_)BINSTRING, globals under ``numpy.core`` instead of ``numpy._core``."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str

    def save_global(self, obj, name=None) -> None:
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)


def dumps_py2(obj) -> bytes:
    buf = io.BytesIO()
    Py2StylePickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def random_batch(rng, n):
    images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    return images, images.reshape(n, 3072)  # a row is the R plane, then G, then B


def make_cifar10(path, dumps=dumps_py2, n=3, seed=0, extract_to=None):
    """Write a tiny cifar-10-python.tar.gz (5 train batches + 1 test batch of n images)."""
    rng = np.random.default_rng(seed)
    names = [f"class{k}" for k in range(10)]
    files = {
        "batches.meta": dumps(
            {
                b"label_names": [s.encode() for s in names],
                b"num_cases_per_batch": n,
                b"num_vis": 3072,
            }
        )
    }
    expected = {"train": ([], []), "test": ([], [])}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        images, data = random_batch(rng, n)
        labels = [int(v) for v in rng.integers(0, 10, size=n)]
        files[name] = dumps(
            {
                b"batch_label": name.encode(),
                b"labels": labels,
                b"data": data,
                b"filenames": [f"{name}_{i}.png".encode() for i in range(n)],
            }
        )
        split = "test" if name == "test_batch" else "train"
        expected[split][0].append(images)
        expected[split][1].append(labels)
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in files.items():
            add_member(tar, f"cifar-10-batches-py/{name}", blob)
    if extract_to is not None:
        folder = extract_to / "cifar-10-batches-py"
        folder.mkdir(parents=True)
        for name, blob in files.items():
            (folder / name).write_bytes(blob)
    return {k: (np.concatenate(v[0]), np.concatenate(v[1])) for k, v in expected.items()}, names


def make_cifar100(path, dumps=dumps_py2, n=5, seed=1):
    rng = np.random.default_rng(seed)
    fine = [f"fine{k}" for k in range(100)]
    coarse = [f"coarse{k}" for k in range(20)]
    files = {
        "meta": dumps(
            {
                b"fine_label_names": [s.encode() for s in fine],
                b"coarse_label_names": [s.encode() for s in coarse],
            }
        )
    }
    expected = {}
    for split in ("train", "test"):
        images, data = random_batch(rng, n)
        f, c = rng.integers(0, 100, size=n), rng.integers(0, 20, size=n)
        files[split] = dumps(
            {
                b"data": data,
                b"fine_labels": [int(v) for v in f],
                b"coarse_labels": [int(v) for v in c],
            }
        )
        expected[split] = (images, f, c)
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in files.items():
            add_member(tar, f"cifar-100-python/{name}", blob)
    return expected, fine, coarse


def test_py2_style_pickle_looks_like_the_official_files():
    blob = dumps_py2({b"data": np.zeros((2, 3072), np.uint8)})
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in blob
    assert b"cnumpy\nndarray\n" in blob and b"cnumpy\ndtype\n" in blob
    assert b"_codecs" not in blob and b"numpy._core" not in blob


@pytest.mark.parametrize(
    "dumps",
    [
        dumps_py2,
        lambda obj: pickle.dumps(obj, protocol=2),  # today's numpy: numpy._core + _codecs
        lambda obj: pickle.dumps(obj, protocol=4),
        lambda obj: pickle.dumps(obj, protocol=5),  # numpy._core.numeric._frombuffer
    ],
    ids=["py2-numpy.core", "protocol2-numpy._core", "protocol4", "protocol5"],
)
def test_cifar10_reads_official_format(tmp_path, dumps):
    expected, names = make_cifar10(tmp_path / "cifar-10-python.tar.gz", dumps=dumps)
    train, test = cifar10(tmp_path, download=False)
    for got, (images, labels) in ((train, expected["train"]), (test, expected["test"])):
        assert got.images.dtype == np.uint8 and got.images.shape == (len(labels), 3, 32, 32)
        assert got.labels.dtype == np.int64
        np.testing.assert_array_equal(got.images, images)
        np.testing.assert_array_equal(got.labels, labels)
        assert got.classes == names
    assert len(train) == 15 and len(test) == 3


def test_cifar10_channel_layout(tmp_path):
    """A row of ``data`` is 1024 red, then 1024 green, then 1024 blue values."""
    expected, _ = make_cifar10(tmp_path / "cifar-10-python.tar.gz")
    train, _ = cifar10(tmp_path, download=False)
    flat = expected["train"][0].reshape(-1, 3072)
    assert train.images[0, 1, 0, 0] == flat[0, 1024]
    assert train.images[0, 0, 1, 2] == flat[0, 32 + 2]


def test_cifar10_from_extracted_folder_and_tarball_path(tmp_path):
    archive = tmp_path / "elsewhere.tar.gz"
    expected, _ = make_cifar10(archive, extract_to=tmp_path / "mine")
    folder = tmp_path / "mine" / "cifar-10-batches-py"
    for root, source in (
        (tmp_path / "mine", f"{folder}/"),
        (folder, f"{folder}/"),
        (archive, f"{archive}:cifar-10-batches-py/"),
    ):
        train, test = cifar10(root, download=False)
        np.testing.assert_array_equal(train.images, expected["train"][0])
        np.testing.assert_array_equal(test.labels, expected["test"][1])
        assert train.source == test.source == source


@pytest.mark.parametrize("dumps", [dumps_py2, lambda obj: pickle.dumps(obj, protocol=2)])
def test_cifar100_fine_and_coarse(tmp_path, dumps):
    expected, fine, coarse = make_cifar100(tmp_path / "cifar-100-python.tar.gz", dumps=dumps)
    train, _ = cifar100(tmp_path, download=False)
    np.testing.assert_array_equal(train.images, expected["train"][0])
    np.testing.assert_array_equal(train.labels, expected["train"][1])
    assert train.classes == fine and train.labels.dtype == np.int64
    _, test_c = cifar100(tmp_path, download=False, label="coarse")
    np.testing.assert_array_equal(test_c.labels, expected["test"][2])
    assert test_c.classes == coarse
    with pytest.raises(ValueError, match=r"fine.*coarse"):
        cifar100(tmp_path, download=False, label="superclass")


def test_missing_data_without_download_says_where_and_how(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        cifar10(tmp_path, download=False)
    message = str(err.value)
    assert str(tmp_path / "cifar-10-python.tar.gz") in message
    assert "download=True" in message and "cs.toronto.edu" in message
    with pytest.raises(FileNotFoundError, match="cifar-100-python"):
        cifar100(tmp_path, download=False)


class RunsCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class CallsExec:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.mark.parametrize("payload", [RunsCommand, CallsExec])
def test_pickle_with_code_is_refused_and_nothing_runs(tmp_path, payload):
    marker = tmp_path / "pwned"
    archive = tmp_path / "cifar-10-python.tar.gz"
    make_cifar10(archive)
    evil = pickle.dumps({b"data": payload(marker), b"labels": []}, protocol=2)
    with tarfile.open(archive, "w:gz") as tar:  # same layout, one poisoned batch
        add_member(
            tar, "cifar-10-batches-py/batches.meta", dumps_py2({b"label_names": [b"a"] * 10})
        )
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            add_member(tar, f"cifar-10-batches-py/{name}", evil)
    with pytest.raises(UnsafePickleError, match="refusing to load global"):
        cifar10(tmp_path, download=False)
    assert not marker.exists()


def test_codecs_stand_in_only_decodes_latin1():
    # A pickle may name _codecs.encode for protocol-2 bytes, but only with "latin1".
    evil = b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x06\x00\x00\x00base64\x86R."
    with pytest.raises(UnsafePickleError):
        cifar.load_pickle(evil, "evil")


def _symlink(name):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    return info


def _device(name):
    info = tarfile.TarInfo(name)
    info.type = tarfile.CHRTYPE
    return info


@pytest.mark.parametrize(
    "bad",
    [
        lambda: tarfile.TarInfo("cifar-10-batches-py/../../escape"),
        lambda: tarfile.TarInfo("/tmp/nnscratch-absolute"),
        lambda: _symlink("cifar-10-batches-py/data_batch_1"),
        lambda: _device("cifar-10-batches-py/dev"),
    ],
    ids=["dotdot", "absolute", "symlink", "device"],
)
def test_unsafe_tar_member_is_refused(tmp_path, bad):
    archive = tmp_path / "cifar-10-python.tar.gz"
    good = tmp_path / "good.tar.gz"
    make_cifar10(good)
    with tarfile.open(good) as src, tarfile.open(archive, "w:gz") as dst:
        info = bad()
        dst.addfile(info, io.BytesIO(b"x") if info.isfile() else None)
        for member in src.getmembers():
            dst.addfile(member, src.extractfile(member))
    with pytest.raises(ValueError, match="refusing"):
        cifar10(tmp_path, download=False)
    assert not (tmp_path.parent / "escape").exists()
    assert not any(p.name in ("escape", "dev") for p in tmp_path.rglob("*"))


def test_missing_member_and_corrupt_archive(tmp_path):
    archive = tmp_path / "partial.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        add_member(tar, "cifar-10-batches-py/batches.meta", b"")
    with pytest.raises(ValueError, match=r"missing members.*data_batch_1"):
        read_tar_members(archive, "cifar-10-batches-py", {"batches.meta": 10, "data_batch_1": 10})
    broken = tmp_path / "cifar-10-python.tar.gz"
    broken.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(ValueError, match="not a readable tar archive"):
        cifar10(tmp_path, download=False)


def test_batch_with_wrong_shape_is_rejected(tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        add_member(
            tar, "cifar-10-batches-py/batches.meta", dumps_py2({b"label_names": [b"a"] * 10})
        )
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            blob = dumps_py2({b"data": np.zeros((2, 1000), np.uint8), b"labels": [0, 1]})
            add_member(tar, f"cifar-10-batches-py/{name}", blob)
    with pytest.raises(ValueError, match=r"data_batch_1: 'data' must be uint8 \(n, 3072\)"):
        cifar10(tmp_path, download=False)


# --- files that claim more than they hold (memory use is measured in test_untrusted_data) ---


def test_array_must_be_built_as_numpy_pickles_it():
    stride_zero = (np.ndarray, ((10, 3072), "u1", b"\x00", 0, (0, 0)))
    evil = pickle.dumps({b"data": type("A", (), {"__reduce__": lambda self: stride_zero})()})
    with pytest.raises(UnsafePickleError, match=r"evil: refusing to call numpy.ndarray"):
        cifar.load_pickle(evil, "evil")
    big_empty = (  # _reconstruct(ndarray, (10**9,), b"b") instead of the usual (0,)
        b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
        b"J\x00\xca\x9a;\x85U\x01b\x87R."
    )
    with pytest.raises(UnsafePickleError, match=r"evil: refusing _reconstruct.*1000000000"):
        cifar.load_pickle(big_empty, "evil")


def batch_arrays(d, pickle_size=10**6, max_images=4):
    return cifar._batch_arrays(d, "batch", pickle_size, max_images, "labels", classes=10)


def test_batch_arrays_are_checked_before_any_copy():
    stride_zero = np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), (3, 3072), (0, 0))
    with pytest.raises(ValueError, match=r"batch: 'data' is .* strides \(0, 0\)"):
        batch_arrays({"data": stride_zero, "labels": [0, 1, 2]})
    data = np.zeros((3, 3072), np.uint8)
    with pytest.raises(ValueError, match=r"9,216 bytes\), which a 9,000-byte pickle"):
        batch_arrays({"data": data, "labels": [0, 1, 2]}, pickle_size=9000)
    with pytest.raises(ValueError, match=r"holds 3 images, more than the 2 of the official"):
        batch_arrays({"data": data, "labels": [0, 1, 2]}, max_images=2)
    nested = [[0] * 1000] * 3  # converting it would multiply the shared inner list
    for labels in (nested, [0, 1], [0, 1, 10], [0, 1, True], np.zeros((3, 1), np.int64)):
        with pytest.raises(ValueError, match=r"'labels' must be 3 integers in \[0, 10\)"):
            batch_arrays({"data": data, "labels": labels})
    images, labels = batch_arrays({"data": data, "labels": np.array([0, 1, 2], np.uint8)})
    assert images.shape == (3, 3, 32, 32) and labels.dtype == np.int64


def test_meta_must_hold_the_official_number_of_names(tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    make_cifar10(archive)
    with tarfile.open(archive) as src:
        members = {m.name: src.extractfile(m).read() for m in src.getmembers()}
    members["cifar-10-batches-py/batches.meta"] = dumps_py2({b"label_names": [b"a"] * 11})
    with tarfile.open(archive, "w:gz") as tar:
        for name, blob in members.items():
            add_member(tar, name, blob)
    with pytest.raises(ValueError, match=r"batches.meta: 'label_names' must be a list of 10"):
        cifar10(tmp_path, download=False)


def test_oversized_or_repeated_member_is_refused(tmp_path):
    archive = tmp_path / "a.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        add_member(tar, "f/meta", b"x" * 11)
    with pytest.raises(ValueError, match=r"member f/meta is 11 bytes, more than the 10 bytes"):
        read_tar_members(archive, "f", {"meta": 10})
    assert read_tar_members(archive, "f", {"meta": 11}) == {"meta": b"x" * 11}
    with tarfile.open(archive, "w:gz") as tar:
        add_member(tar, "f/meta", b"x")
        add_member(tar, "f/meta", b"y")
    with pytest.raises(ValueError, match="member f/meta appears twice"):
        read_tar_members(archive, "f", {"meta": 10})

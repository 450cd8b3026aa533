"""Fashion-MNIST reader on tiny gzipped IDX files made inside the test."""

from __future__ import annotations

import gzip
import hashlib
import importlib
import struct

import numpy as np
import pytest

# The package re-exports a function named like this module; patch the module itself.
fm = importlib.import_module("nnscratch.data.fashion_mnist")


def idx_bytes(values: np.ndarray) -> bytes:
    header = struct.pack(">4B", 0, 0, 8, values.ndim) + struct.pack(
        f">{values.ndim}I", *values.shape
    )
    return header + values.astype(np.uint8).tobytes()


def fake_arrays(n_train=7, n_test=5, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte.gz": rng.integers(1, 256, size=(n_train, 28, 28)),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, size=n_train),
        "t10k-images-idx3-ubyte.gz": rng.integers(1, 256, size=(n_test, 28, 28)),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, size=n_test),
    }


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """Write the four files (gzipped IDX) to ``tmp_path/files`` and make them the expected
    ones: FILES holds their checksums and the system directory is an empty folder."""
    arrays = fake_arrays()
    folder = tmp_path / "files"
    folder.mkdir()
    checksums = {}
    for name, values in arrays.items():
        raw = idx_bytes(values)
        gz = gzip.compress(raw)
        (folder / name).write_bytes(gz)
        checksums[name] = (hashlib.md5(gz).hexdigest(), hashlib.md5(raw).hexdigest())
    monkeypatch.setattr(fm, "FILES", checksums)
    monkeypatch.setattr(fm, "SYSTEM_DIR", tmp_path / "system")
    return folder, arrays


def test_reads_idx_files(fake):
    folder, arrays = fake
    train, test = fm.fashion_mnist(folder, download=False)
    assert train.images.shape == (7, 1, 28, 28) and train.images.dtype == np.uint8
    assert test.images.shape == (5, 1, 28, 28)
    assert train.labels.dtype == np.int64
    np.testing.assert_array_equal(train.images[:, 0], arrays["train-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(train.labels, arrays["train-labels-idx1-ubyte.gz"])
    np.testing.assert_array_equal(test.images[:, 0], arrays["t10k-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(test.labels, arrays["t10k-labels-idx1-ubyte.gz"])
    assert train.classes[0] == "T-shirt/top" and train.classes[9] == "Ankle boot"
    assert len(train.classes) == 10


def test_pad_to_32_zero_pads_two_pixels_each_side(fake):
    folder, arrays = fake
    train, _ = fm.fashion_mnist(folder, download=False, pad_to=32)
    assert train.images.shape == (7, 1, 32, 32)
    np.testing.assert_array_equal(
        train.images[:, 0, 2:30, 2:30], arrays["train-images-idx3-ubyte.gz"]
    )
    border = train.images.copy()
    border[:, :, 2:30, 2:30] = 0
    assert not border.any()  # the fake images have no zero pixel, so this checks the pad
    with pytest.raises(ValueError, match="pad_to"):
        fm.fashion_mnist(folder, download=False, pad_to=20)


def test_cache_subfolder_uncompressed_and_system_dir(fake, tmp_path, monkeypatch):
    folder, arrays = fake
    cache = tmp_path / "cache" / "fashion-mnist"
    cache.mkdir(parents=True)
    for name in arrays:  # uncompressed copies are accepted too
        (cache / name.removesuffix(".gz")).write_bytes(
            gzip.decompress((folder / name).read_bytes())
        )
    train, _ = fm.fashion_mnist(tmp_path / "cache", download=False)
    np.testing.assert_array_equal(train.labels, arrays["train-labels-idx1-ubyte.gz"])
    assert train.source == str(cache)  # where it was read from, for the trainer's message
    # Nothing in the cache: found in the system directory.
    monkeypatch.setattr(fm, "SYSTEM_DIR", folder)
    train, test = fm.fashion_mnist(tmp_path / "empty", download=False)
    np.testing.assert_array_equal(train.labels, arrays["train-labels-idx1-ubyte.gz"])
    assert train.source == test.source == str(folder)


def test_checksum_of_decompressed_bytes_is_verified(fake):
    folder, arrays = fake
    values = arrays["t10k-labels-idx1-ubyte.gz"].copy()
    values[0] = (values[0] + 1) % 10
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(values)))
    expected = fm.FILES["t10k-labels-idx1-ubyte.gz"][1]
    with pytest.raises(ValueError, match=rf"t10k-labels-idx1-ubyte.gz.*expected md5 {expected}"):
        fm.fashion_mnist(folder, download=False)


def test_missing_files_without_download(fake, tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        fm.fashion_mnist(tmp_path / "nowhere", download=False)
    message = str(err.value)
    assert "train-images-idx3-ubyte.gz" in message and "download=True" in message
    assert str(tmp_path / "nowhere") in message and "dataset-fashion-mnist" in message


@pytest.mark.parametrize(
    ("data", "ndim", "message"),
    [
        (b"\x00\x00\x08", None, "bad magic"),
        (b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00", None, "bad magic"),
        (b"\x00\x00\x0d\x01" + struct.pack(">I", 1) + b"\x00", None, "value type 0x0d"),
        (b"\x00\x00\x08\x02" + struct.pack(">I", 1), None, "truncated IDX header"),
        (b"\x00\x00\x08\x01" + struct.pack(">I", 3) + b"\x00\x01", None, r"mismatch.*\(3,\)"),
        (b"\x00\x00\x08\x01" + struct.pack(">I", 1) + b"\x00\x01", None, "size mismatch"),
        (idx_bytes(np.zeros((2, 3, 3))), 1, "3 dimensions, expected 1"),
    ],
)
def test_strict_idx_parsing_names_the_file(data, ndim, message):
    with pytest.raises(ValueError, match=message) as err:
        fm.parse_idx(data, "some-file.gz", ndim=ndim)
    assert "some-file.gz" in str(err.value)


def test_parse_idx_roundtrip():
    values = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(fm.parse_idx(idx_bytes(values), "x", ndim=3), values)


def test_image_and_label_counts_must_agree(fake):
    folder, arrays = fake
    raw = idx_bytes(arrays["train-labels-idx1-ubyte.gz"][:-1])
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(raw))
    fm.FILES["train-labels-idx1-ubyte.gz"] = ("", hashlib.md5(raw).hexdigest())
    with pytest.raises(ValueError, match=r"7 images but .* 6 labels"):
        fm.fashion_mnist(folder, download=False)


@pytest.mark.skipif(
    not (fm.SYSTEM_DIR / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian package dataset-fashion-mnist not installed",
)
def test_debian_copy_matches_the_hard_coded_checksums(tmp_path):
    train, test = fm.fashion_mnist(tmp_path, download=False)
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    np.testing.assert_array_equal(np.bincount(train.labels), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(test.labels), [1000] * 10)


def test_idx_size_check_does_not_wrap_around():
    # 2**31 * 2**31 * 4 = 2**64 items: 0 in int64 arithmetic, which matched an empty body.
    data = b"\x00\x00\x08\x03" + struct.pack(">3I", 2**31, 2**31, 4)
    with pytest.raises(ValueError, match=r"x.gz: IDX size mismatch.*18446744073709551632 bytes"):
        fm.parse_idx(data, "x.gz", ndim=3)


def test_file_larger_than_the_official_one_is_refused(fake, monkeypatch):
    folder, _ = fake
    monkeypatch.setitem(fm.IDX_BYTES, "train-labels-idx1-ubyte.gz", 8 + 6)  # the fake has 7
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte.gz: more than the 14 bytes"):
        fm.fashion_mnist(folder, download=False)

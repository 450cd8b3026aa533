"""Crafted dataset files read in a child process: one clear error, bounded memory.

Each file is small on disk but claims (or inflates to) gigabytes. The reader runs in a
fresh interpreter (``tests/child.py``) so its peak resident memory can be measured; it
must end in one ``ValueError`` naming the file and what is wrong, with no traceback or
warning, and use well under what honouring the claim would cost.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
import zlib

import numpy as np
import pytest
from child import ChildResult, python_baseline_mb, run_child
from PIL import Image

BOMB_BYTES = 600 << 20  # what the bombs inflate to: far above every limit, quick to write
CHILD = """
import sys
from nnscratch.data import {function}
try:
    {function}(sys.argv[1], {arguments})
except ValueError as e:
    print("ValueError:", e)
else:
    print("accepted")
"""


@pytest.fixture(scope="module")
def baseline_mb() -> float:
    return python_baseline_mb()


def read_in_child(function: str, root, arguments: str = "download=False") -> ChildResult:
    """Call ``nnscratch.data.<function>(root, <arguments>)`` in a child process."""
    code = CHILD.format(function=function, arguments=arguments)
    result = run_child(["-c", code, str(root)])
    print(f"{function}: peak {result.peak_mb:.0f} MiB, {result.stdout.strip()[:300]}")
    return result


def assert_one_clear_error(result: ChildResult, *fragments: str) -> None:
    """The child printed a ValueError containing every fragment, and nothing on stderr."""
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr  # no traceback, no warning
    message = result.stdout.strip()
    assert message.startswith("ValueError:"), message
    for fragment in fragments:
        assert fragment in message, message


def assert_peak_below(result: ChildResult, baseline_mb: float, extra_mb: float) -> None:
    assert result.peak_mb < baseline_mb + extra_mb, (result.peak_mb, baseline_mb)


class Zeros(io.RawIOBase):
    """A read-only stream of ``size`` zero bytes, produced on demand (never held whole)."""

    def __init__(self, size: int):
        self.remaining = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.remaining)
        buffer[:n] = bytes(n)
        self.remaining -= n
        return n


def add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


CIFAR10_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
CIFAR10_META = pickle.dumps({b"label_names": [b"c%d" % k for k in range(10)]}, protocol=2)


def small_batch(n: int = 2) -> bytes:
    return pickle.dumps({b"data": np.zeros((n, 3072), np.uint8), b"labels": [0] * n}, protocol=2)


def write_cifar10(path, batches: dict[str, bytes]) -> None:
    """A cifar-10-python.tar.gz with the given batch pickles, small honest ones elsewhere."""
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        add_member(tar, "cifar-10-batches-py/batches.meta", CIFAR10_META)
        for name in CIFAR10_BATCHES:
            add_member(tar, f"cifar-10-batches-py/{name}", batches.get(name) or small_batch())


class StrideZeroArray:
    """Pickles as ``numpy.ndarray(shape, dtype, one_item, 0, strides=0...)``: every element
    shares one item, so a pickle of ~100 bytes unpickles to an array of any size."""

    def __init__(self, shape: tuple[int, ...], dtype: str):
        self.shape, self.dtype = shape, np.dtype(dtype)

    def __reduce__(self):
        strides = (0,) * len(self.shape)
        return (np.ndarray, (self.shape, self.dtype.str, bytes(self.dtype.itemsize), 0, strides))


def test_stride_zero_cifar_batch_is_refused(tmp_path, baseline_mb):
    n = 500_000  # 1.5 GB of images if honoured; a CIFAR-10 batch holds 10,000
    evil = pickle.dumps(
        {b"data": StrideZeroArray((n, 3072), "u1"), b"labels": StrideZeroArray((n,), "<i8")},
        protocol=3,
    )
    assert len(evil) < 300
    write_cifar10(tmp_path / "cifar-10-python.tar.gz", {"data_batch_1": evil})
    result = read_in_child("cifar10", tmp_path)
    assert_one_clear_error(result, "data_batch_1")
    assert_peak_below(result, baseline_mb, 100)


def test_cifar_tar_member_bomb_is_refused(tmp_path, baseline_mb):
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        add_member(tar, "cifar-10-batches-py/batches.meta", CIFAR10_META)
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        info.size = BOMB_BYTES
        tar.addfile(info, Zeros(BOMB_BYTES))
    assert archive.stat().st_size < BOMB_BYTES // 100
    result = read_in_child("cifar10", tmp_path)
    assert_one_clear_error(result, str(archive), "data_batch_1", f"{BOMB_BYTES:,} bytes")
    assert_peak_below(result, baseline_mb, 100)


def test_oversized_file_in_extracted_cifar_folder_is_refused(tmp_path, baseline_mb):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "batches.meta").write_bytes(CIFAR10_META)
    for name in CIFAR10_BATCHES:
        (folder / name).write_bytes(small_batch())
    with open(folder / "data_batch_3", "wb") as f:
        f.truncate(BOMB_BYTES)  # sparse: no disk space used
    result = read_in_child("cifar10", tmp_path)
    assert_one_clear_error(result, str(folder / "data_batch_3"), f"{BOMB_BYTES:,} bytes")
    assert_peak_below(result, baseline_mb, 100)


@pytest.mark.parametrize("compressed", [True, False], ids=["gz-bomb", "huge-uncompressed"])
def test_oversized_fashion_mnist_file_is_refused(tmp_path, baseline_mb, compressed):
    name = "train-images-idx3-ubyte.gz"
    if compressed:
        path = tmp_path / name
        with gzip.open(path, "wb", compresslevel=1) as f:
            chunk = bytes(1 << 20)
            for _ in range(BOMB_BYTES // len(chunk)):
                f.write(chunk)
        assert path.stat().st_size < BOMB_BYTES // 100
    else:
        path = tmp_path / name.removesuffix(".gz")
        with open(path, "wb") as f:
            f.truncate(BOMB_BYTES)
    result = read_in_child("fashion_mnist", tmp_path)
    # The official file decompresses to 16 + 60000 * 28 * 28 bytes, and no more.
    assert_one_clear_error(result, str(path), "47,040,016 bytes")
    assert_peak_below(result, baseline_mb, 150)


def png_claiming(width: int, height: int, with_pixels: bool) -> bytes:
    """A PNG whose header claims width x height black RGB pixels; ``with_pixels`` adds the
    compressed pixel data (a valid image), else the data stops after a few bytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    compressor = zlib.compressobj(1)
    row = bytes(1 + 3 * width)  # filter byte, then the pixels
    pixels = b"".join(compressor.compress(row) for _ in range(height if with_pixels else 1))
    pixels += compressor.flush()
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("width", "height", "with_pixels"),
    [(100_000, 100_000, False), (10_000, 10_000, True), (8_000, 8_000, True)],
    ids=["pillow-error", "pillow-warning", "under-pillow-limit"],
)
def test_decompression_bomb_image_is_refused(tmp_path, baseline_mb, width, height, with_pixels):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        Image.new("RGB", (4, 4)).save(tmp_path / name / "fine.png")
    bomb = tmp_path / "b" / "bomb.png"
    bomb.write_bytes(png_claiming(width, height, with_pixels))
    result = read_in_child("image_folder", tmp_path, "size=8")
    pixels = width * height
    claim = f"{pixels} pixels" if pixels > 2 * 89_478_485 else f"{width} x {height} = {pixels:,}"
    assert_one_clear_error(result, f"refusing image {bomb}", claim)
    assert_peak_below(result, baseline_mb, 100)

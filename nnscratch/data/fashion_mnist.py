"""Fashion-MNIST (Zalando) from its four gzipped IDX files.

Each file is looked up in the cache (``<root>/fashion-mnist/``, or ``<root>/`` itself),
then in ``/usr/share/datasets/fashion-mnist/`` (the Debian package
``dataset-fashion-mnist``), and only then downloaded from the zalandoresearch GitHub
repository (over HTTPS; the S3 website address in the project README serves plain
HTTP only). An uncompressed copy (the name without ``.gz``) is accepted too.

IDX format: a 4-byte magic ``00 00 08 ndim`` (08 = unsigned bytes), ``ndim``
big-endian uint32 sizes, then the values in row-major order, nothing after them.

The size of every official file is known exactly (:data:`IDX_BYTES`), so a file is
never read or decompressed past it: a larger file, or a gzip stream that inflates to
more, is refused with a ``ValueError`` naming the file before its checksum is computed.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import zlib
from pathlib import Path

import numpy as np

from .dataset import ArrayDataset
from .download import data_root, download

URL = "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
SUBDIR = "fashion-mnist"

# file -> (md5 of the official .gz, md5 of the decompressed IDX bytes). Debian
# recompresses the files, so the .gz checksum differs between sources; the content is
# verified by the md5 of the decompressed bytes, computed from the Debian copy
# (dataset-fashion-mnist 0.0~git20200523.55506a9-1) and matching the values other
# projects publish for the uncompressed files. The .gz md5 checks a fresh download.
FILES = {
    "train-images-idx3-ubyte.gz": (
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    ),
    "train-labels-idx1-ubyte.gz": (
        "25c81989df183df01b3e8a0aad5dffbe",
        "9018921c3c673c538a1fc5bad174d6f9",
    ),
    "t10k-images-idx3-ubyte.gz": (
        "bef4ecab320f06d8554ea6380940ec79",
        "8181f5470baa50b63fa0f6fddb340f0a",
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "bb300cfdad3c16e7a12a480ee83cd310",
        "15d484375f8d13e6eb1aabb0c3f46965",
    ),
}

# file -> bytes of the official decompressed IDX file: header, then one byte per value.
IDX_BYTES = {
    "train-images-idx3-ubyte.gz": 16 + 60_000 * 28 * 28,
    "train-labels-idx1-ubyte.gz": 8 + 60_000,
    "t10k-images-idx3-ubyte.gz": 16 + 10_000 * 28 * 28,
    "t10k-labels-idx1-ubyte.gz": 8 + 10_000,
}

CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


def fashion_mnist(
    root: str | os.PathLike | None = None,
    download: bool = True,
    pad_to: int | None = None,
    *,
    mirror: str | None = None,
) -> tuple[ArrayDataset, ArrayDataset]:
    """Fashion-MNIST as ``(train, test)``: images uint8 (60000|10000, 1, 28, 28), labels int64.

    ``pad_to=32`` zero-pads every image to (1, 32, 32) (2 px each side), the size the
    CIFAR-stem networks expect. Missing files are downloaded when ``download`` is true.
    """
    if pad_to is not None and (
        isinstance(pad_to, bool) or not isinstance(pad_to, int) or pad_to < 28
    ):
        raise ValueError(f"fashion_mnist: pad_to must be None or an int >= 28, got {pad_to!r}")
    found = {name: _read_verified(name, root, download, mirror) for name in FILES}
    raw = {name: data for name, (_, data) in found.items()}
    source = ", ".join(sorted({str(path.parent) for path, _ in found.values()}))
    splits = []
    for prefix in ("train", "t10k"):
        images_name, labels_name = (
            f"{prefix}-images-idx3-ubyte.gz",
            f"{prefix}-labels-idx1-ubyte.gz",
        )
        images = parse_idx(raw[images_name], images_name, ndim=3)  # (N, 28, 28)
        labels = parse_idx(raw[labels_name], labels_name, ndim=1)  # (N,)
        if len(images) != len(labels):
            raise ValueError(
                f"{images_name} has {len(images)} images but {labels_name} has {len(labels)} labels"
            )
        images = images[:, None]  # (N, 1, 28, 28)
        if pad_to is not None:
            before_h, before_w = (pad_to - images.shape[2]) // 2, (pad_to - images.shape[3]) // 2
            padding = (
                (0, 0),
                (0, 0),
                (before_h, pad_to - images.shape[2] - before_h),
                (before_w, pad_to - images.shape[3] - before_w),
            )
            images = np.pad(images, padding)  # (N, 1, pad_to, pad_to), zeros outside
        splits.append(ArrayDataset(images, labels.astype(np.int64), list(CLASSES), source))
    return splits[0], splits[1]


def parse_idx(data: bytes, source: str, ndim: int | None = None) -> np.ndarray:
    """Parse IDX bytes of unsigned-byte values into a uint8 array of the stored shape.

    Checks the magic, the number of dimensions (``ndim`` if given) and that the size
    matches the header exactly; errors name ``source``.
    """
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{source}: not an IDX file (bad magic {data[:4].hex() or 'empty'})")
    if data[2] != 0x08:
        raise ValueError(f"{source}: IDX value type 0x{data[2]:02x}, expected 0x08 (uint8)")
    n_dims = data[3]
    if ndim is not None and n_dims != ndim:
        raise ValueError(f"{source}: IDX file has {n_dims} dimensions, expected {ndim}")
    header = 4 + 4 * n_dims
    if len(data) < header:
        raise ValueError(f"{source}: truncated IDX header ({len(data)} bytes)")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=n_dims, offset=4))
    expected = header + math.prod(shape)  # Python ints: no int64 wrap-around
    if len(data) != expected:
        raise ValueError(
            f"{source}: IDX size mismatch: header says {shape} ({expected} bytes), "
            f"file has {len(data)} bytes"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


def _candidates(name: str, root) -> list[Path]:
    base = data_root(root)
    dirs = [base / SUBDIR, base, SYSTEM_DIR]
    return [d / n for d in dirs for n in (name, name.removesuffix(".gz"))]


def _read_verified(name: str, root, allow_download: bool, mirror: str | None) -> tuple[Path, bytes]:
    """Find (or fetch) ``name``: its path and its decompressed, checksum-verified bytes."""
    gz_md5, raw_md5 = FILES[name]
    path = next((p for p in _candidates(name, root) if p.is_file()), None)
    if path is None:
        target = data_root(root) / SUBDIR / name
        if not allow_download:
            looked = ", ".join(str(p.parent) for p in _candidates(name, root)[::2])
            raise FileNotFoundError(
                f"Fashion-MNIST file {name} not found in {looked}. Pass download=True to "
                f"fetch it from {URL}, install the Debian package dataset-fashion-mnist, or "
                f"put the four files in {target.parent}."
            )
        path = download(URL + name, target, gz_md5, mirror=mirror)
    limit = IDX_BYTES[name]
    with open(path, "rb") as f:
        if path.suffix != ".gz":
            data = f.read(limit + 1)
        else:
            try:
                data = gzip.GzipFile(fileobj=f).read(limit + 1)
            except (OSError, EOFError, zlib.error) as e:
                raise ValueError(f"{path}: not a readable gzip file ({e})") from e
    if len(data) > limit:
        raise ValueError(
            f"{path}: more than the {limit:,} bytes of the official (decompressed) IDX file; "
            "refusing to read further (the file is damaged or not the official one)"
        )
    got = hashlib.md5(data, usedforsecurity=False).hexdigest()
    if got != raw_md5:
        raise ValueError(
            f"{path}: checksum mismatch of the decompressed IDX data: expected md5 {raw_md5}, "
            f"got {got}; delete the file to download it again"
        )
    return path, data

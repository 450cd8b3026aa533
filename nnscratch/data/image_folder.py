"""A folder of your own images, one sub-folder per class, read with Pillow.

Two layouts are understood::

    root/cat/001.png              root/train/cat/001.png
    root/dog/002.jpg      or      root/test/cat/101.png
                                  root/train/dog/...

In the first, a seeded stratified split makes the test set; in the second the given
split is used and the classes are the sub-folders of ``train/``. Files ending in
``.png``, ``.jpg`` or ``.jpeg`` (any case) are read; hidden files and other files are
ignored. Every image is converted to RGB (or greyscale) and resized to size x size
(bilinear, aspect ratio not kept).

An image is decoded only if its header declares at most :data:`MAX_IMAGE_PIXELS`
pixels, so a small file claiming a huge picture (a decompression bomb) is refused with a
``ValueError`` naming it and its claimed size, before any pixel memory is allocated.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .dataset import ArrayDataset

EXTENSIONS = (".png", ".jpg", ".jpeg")
# A 50-megapixel photo (about 8200 x 6100): decoding one costs up to ~8 bytes a pixel.
# Below Pillow's own warning threshold (~89 million), which this reader turns into an error.
MAX_IMAGE_PIXELS = 50_000_000


def image_folder(
    root: str | os.PathLike,
    size: int = 32,
    channels: int = 3,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> tuple[ArrayDataset, ArrayDataset]:
    """Read ``root`` as ``(train, test)``: images uint8 (N, channels, size, size), labels int64.

    Classes are the sorted sub-folder names. Without ``train/`` and ``test/``
    sub-folders, ``test_fraction`` of each class (drawn with ``seed``) becomes the
    test set.
    """
    root = Path(root)
    if channels not in (1, 3):
        raise ValueError(f"image_folder: channels must be 1 or 3, got {channels!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"image_folder: size must be a positive int, got {size!r}")
    if not root.is_dir():
        raise FileNotFoundError(f"image_folder: {root} is not a directory")
    if (root / "train").is_dir() and (root / "test").is_dir():
        classes = _class_dirs(root / "train")
        test_classes = _class_dirs(root / "test")
        unknown = sorted(set(test_classes) - set(classes))
        if unknown:
            raise ValueError(
                f"image_folder: {root / 'test'} has classes not in {root / 'train'}: "
                f"{', '.join(unknown)}"
            )
        train = _read_split(root / "train", classes, size, channels, require_all=True)
        test = _read_split(root / "test", classes, size, channels, require_all=False)
        return train, test
    classes = _class_dirs(root)
    full = _read_split(root, classes, size, channels, require_all=True)
    return full.split(test_fraction, seed=seed)


def _class_dirs(folder: Path) -> list[str]:
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(f"image_folder: {folder} has no class sub-folders (one per class)")
    return classes


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in EXTENSIONS
    )


def _read_split(
    folder: Path, classes: list[str], size: int, channels: int, require_all: bool
) -> ArrayDataset:
    """Load every image under ``folder/<class>/``: uint8 (N, C, size, size), int64 (N,)."""
    images, labels = [], []
    for k, name in enumerate(classes):
        class_dir = folder / name
        files = _image_files(class_dir) if class_dir.is_dir() else []
        if not files and require_all:
            raise ValueError(
                f"image_folder: class {name!r} has no images in {class_dir} "
                f"(expected files ending in {', '.join(EXTENSIONS)})"
            )
        images += [_load_image(path, size, channels) for path in files]
        labels += [k] * len(files)
    if not images:
        raise ValueError(f"image_folder: no images found under {folder}")
    return ArrayDataset(np.stack(images), np.array(labels, dtype=np.int64), classes, str(folder))


def _load_image(path: Path, size: int, channels: int) -> np.ndarray:
    """One image as uint8 (C, size, size); refuses one larger than ``MAX_IMAGE_PIXELS``."""
    try:
        with warnings.catch_warnings():
            # Pillow warns above ~89 million pixels; the size check below refuses those.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)  # reads the header only
    except Image.DecompressionBombError as e:  # Pillow refuses above ~179 million pixels
        raise ValueError(f"image_folder: refusing image {path}: {e}") from e
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise ValueError(f"image_folder: cannot read image {path}: {e}") from e
    with image:
        width, height = image.size
        if width * height > MAX_IMAGE_PIXELS:
            raise ValueError(
                f"image_folder: refusing image {path}: it declares {width} x {height} "
                f"= {width * height:,} pixels, more than the {MAX_IMAGE_PIXELS:,} this "
                "reader decodes (a decompression bomb, or a photo to shrink first)"
            )
        try:
            converted = image.convert("RGB" if channels == 3 else "L")
            pixels = np.asarray(converted.resize((size, size), Image.BILINEAR), dtype=np.uint8)
        except (OSError, ValueError) as e:
            raise ValueError(f"image_folder: cannot read image {path}: {e}") from e
    return pixels.reshape(size, size, channels).transpose(2, 0, 1)  # (H, W, C) -> (C, H, W)

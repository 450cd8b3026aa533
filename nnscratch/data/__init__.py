"""Datasets, transforms and a seeded batch loader; nothing is read or fetched at import.

from nnscratch import data
train, test = data.load("cifar10")                  # or "cifar100", "fashion_mnist",
train, val = train.split(0.1, seed=0)               #    "folder", "synthetic"
mean, std = data.channel_stats(train.images)
augment = data.Pipeline.from_options(mean, std, crop=4, flip=True)
for x, y in data.BatchLoader(train, 128, seed=0, transform=augment):
    ...                                             # x float32 (B, 3, 32, 32), y int64 (B,)
"""

from .cifar import cifar10, cifar100
from .dataset import ArrayDataset, load, names
from .download import DownloadError, data_root, download
from .fashion_mnist import fashion_mnist
from .image_folder import image_folder
from .loader import BatchLoader
from .synthetic import synthetic
from .transforms import (
    ColorJitter,
    HorizontalFlip,
    Normalize,
    Pipeline,
    RandomCrop,
    channel_stats,
    color_jitter,
    horizontal_flip,
    normalize,
    random_crop,
    to_float,
)

__all__ = [
    "ArrayDataset",
    "BatchLoader",
    "ColorJitter",
    "DownloadError",
    "HorizontalFlip",
    "Normalize",
    "Pipeline",
    "RandomCrop",
    "channel_stats",
    "cifar10",
    "cifar100",
    "color_jitter",
    "data_root",
    "download",
    "fashion_mnist",
    "horizontal_flip",
    "image_folder",
    "load",
    "names",
    "normalize",
    "random_crop",
    "synthetic",
    "to_float",
]

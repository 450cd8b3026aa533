"""Everything a training run depends on, as one flat, JSON-friendly dataclass."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from nnscratch.nn.init import CONV_INITS

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "onecycle", "step", "multistep", "constant")
DEFAULT_LR = {"sgd": 0.1, "adam": 1e-3, "adamw": 1e-3}
# What `nnscratch train --dataset NAME` uses for the options not given (measured; README).
DATASET_RECIPES = {
    "fashion_mnist": {"epochs": 9, "label_smoothing": 0.1, "crop": 2, "test_flip": True},
}


@dataclass
class TrainConfig:
    """Options of ``nnscratch train``; the defaults are the quick-start run."""

    # data
    dataset: str = "synthetic"
    data_dir: str | None = None
    download: bool = True
    n_train: int | None = None  # synthetic only: training images (default: the set's own)
    n_test: int | None = None  # synthetic only: test images
    pad_to: int | None = None  # fashion_mnist only: zero-pad 28x28 to this size
    image_size: int = 32  # folder only: images are resized to this size
    val_fraction: float = 0.1
    # model
    model: str = "resnet18"
    stem: str = "cifar"
    width: float = 0.25  # the quick start: a quarter-width ResNet-18 trains in minutes
    plain: bool = False
    batch_norm: bool = True  # False: no batch norm anywhere (convolutions get biases)
    init: str = "he"  # convolution initialisation: he, xavier or torch (PyTorch's default)
    init_from: str | None = None  # weights to start from (checkpoint, .npz or torchvision .pth)
    freeze_backbone: bool = False
    # optimisation
    epochs: int = 4
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float | None = None  # None: 0.1 for SGD, 1e-3 for Adam/AdamW
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    decay_bn_and_bias: bool = False
    schedule: str = "cosine"
    step_size: int = 30  # epochs, for schedule="step"
    milestones: list[int] = field(default_factory=lambda: [50, 75])  # epochs, "multistep"
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    # augmentation
    crop: int = 4
    flip: bool = True
    jitter: float = 0.0
    test_flip: bool = False  # test on the mean logits of each image and its mirror image
    # run
    seed: int = 0
    out_dir: str | None = None  # None: a new runs/train-<date>-<time>
    prefetch: bool = True

    def __post_init__(self) -> None:
        problems = []
        if self.optimizer not in OPTIMIZERS:
            problems.append(
                f"unknown optimizer {self.optimizer!r} (choose {', '.join(OPTIMIZERS)})"
            )
        if self.schedule not in SCHEDULES:
            problems.append(f"unknown schedule {self.schedule!r} (choose {', '.join(SCHEDULES)})")
        if self.init not in CONV_INITS:
            problems.append(f"unknown init {self.init!r} (choose {', '.join(CONV_INITS)})")
        for name, low in (
            ("epochs", 1),
            ("batch_size", 1),
            ("seed", 0),
            ("crop", 0),
            ("image_size", 1),
            ("step_size", 1),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                problems.append(
                    f"{_option(name)} must be an integer of at least {low}, got {value!r}"
                )
        for name in ("n_train", "n_test"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 10):
                problems.append(f"{_option(name)} must be at least 10, got {value!r}")
        for name, check, wanted in (
            ("lr", lambda v: v is None or v > 0, "above 0"),
            ("width", lambda v: v > 0, "above 0"),
            ("momentum", lambda v: 0 <= v <= 1, "in [0, 1]"),
            ("weight_decay", lambda v: v >= 0, "of at least 0"),
            ("gamma", lambda v: v > 0, "above 0"),
            ("label_smoothing", lambda v: 0 <= v < 1, "in [0, 1)"),
            ("jitter", lambda v: 0 <= v <= 1, "in [0, 1]"),
            ("val_fraction", lambda v: 0 <= v < 1, "in [0, 1)"),
            ("warmup_epochs", lambda v: 0 <= v < self.epochs, "in [0, epochs)"),
        ):
            value = getattr(self, name)
            finite = value is None or (isinstance(value, (int, float)) and math.isfinite(value))
            if not (finite and check(value)):
                problems.append(f"{_option(name)} must be a finite number {wanted}, got {value!r}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Rebuild from :meth:`to_dict` output, ignoring keys this version does not know."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def _option(field_name: str) -> str:
    """A config field with the command-line option that sets it: ``lr (--lr)``."""
    return f"{field_name} (--{field_name.replace('_', '-')})"

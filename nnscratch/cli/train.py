"""``nnscratch train``: train a model on a dataset (the synthetic set by default)."""

from __future__ import annotations

import argparse

from nnscratch import data, models
from nnscratch.nn.init import CONV_INITS
from nnscratch.training import TrainConfig, train
from nnscratch.training.config import DATASET_RECIPES, OPTIMIZERS, SCHEDULES

EXAMPLES = """examples:
  nnscratch train                                   # ResNet-18 on the built-in synthetic set
  nnscratch train --dataset cifar10 --epochs 30     # downloads CIFAR-10 once (170 MB)
  nnscratch train --dataset fashion_mnist --pad-to 32 --epochs 5
  nnscratch train --dataset folder --data-dir ~/pictures/pets --image-size 32
  nnscratch train --model resnet56 --plain          # the plain twin of ResNet-56
  nnscratch train --model resnet56 --plain --no-bn --init torch   # ... without batch norm
  nnscratch train --init-from resnet18.pth --freeze-backbone --dataset cifar10
  nnscratch train --resume runs/train-20261125-210000
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    d = TrainConfig()
    p = subparsers.add_parser(
        "train",
        help="train a model (default: ResNet-18 on the built-in synthetic set)",
        description="Train a ResNet on CIFAR-sized images with SGD/Adam, augmentation, a "
        "learning-rate schedule, per-epoch validation and checkpoints. Writes "
        "config.json, metrics.csv/json, last.npz, best.npz, curves.png, confusion.png "
        "and summary.json to the output directory.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,  # options not given are absent (see run)
    )
    g = p.add_argument_group("data")
    g.add_argument(
        "--dataset",
        help=f"one of {', '.join(data.names())} (default {d.dataset})",
    )
    g.add_argument(
        "--data-dir",
        help="where datasets live (default $NNSCRATCH_DATA or ~/.cache/nnscratch); for 'folder', the image folder",
    )
    g.add_argument(
        "--no-download", action="store_true", help="never download; use files already on disk"
    )
    g.add_argument("--n-train", type=int, help="synthetic set: number of training images")
    g.add_argument("--n-test", type=int, help="synthetic set: number of test images")
    g.add_argument(
        "--pad-to", type=int, help="fashion_mnist: zero-pad the 28x28 images to this size (e.g. 32)"
    )
    g.add_argument(
        "--image-size",
        type=int,
        help=f"folder: resize images to this size (default {d.image_size})",
    )
    g.add_argument(
        "--val-fraction",
        type=float,
        help=f"share of train held out for validation (default {d.val_fraction})",
    )
    g = p.add_argument_group("model")
    g.add_argument("--model", help=f"one of {', '.join(models.names())} (default {d.model})")
    g.add_argument(
        "--stem",
        choices=["cifar", "imagenet"],
        help=f"ResNet-18..152: 3x3 CIFAR stem or 7x7 + max-pool ImageNet stem (default {d.stem})",
    )
    g.add_argument("--width", type=float, help=f"channel multiplier (default {d.width})")
    g.add_argument(
        "--plain", action="store_true", help="train the plain twin (no shortcut connections)"
    )
    g.add_argument(
        "--no-bn", action="store_true", help="no batch norm anywhere (convolutions get biases)"
    )
    g.add_argument(
        "--init",
        choices=CONV_INITS,
        help=f"convolution initialisation; torch is PyTorch's layer default (default {d.init})",
    )
    g.add_argument(
        "--init-from",
        metavar="PATH",
        help="start from these weights: an nnscratch checkpoint, a state-dict .npz, or a torchvision .pth; a head of another size is replaced",
    )
    g.add_argument(
        "--freeze-backbone", action="store_true", help="train only the head (with --init-from)"
    )
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, help=f"default {d.epochs}")
    g.add_argument("--batch-size", type=int, help=f"default {d.batch_size}")
    g.add_argument("--optimizer", choices=OPTIMIZERS, help=f"default {d.optimizer}")
    g.add_argument(
        "--lr", type=float, help="peak learning rate (default 0.1 for sgd, 1e-3 for adam/adamw)"
    )
    g.add_argument("--momentum", type=float, help=f"SGD momentum (default {d.momentum})")
    g.add_argument("--nesterov", action="store_true", help="Nesterov momentum")
    g.add_argument("--weight-decay", type=float, help=f"default {d.weight_decay}")
    g.add_argument(
        "--decay-bn-and-bias",
        action="store_true",
        help="also decay batch-norm parameters and biases (off by default)",
    )
    g.add_argument(
        "--schedule",
        choices=SCHEDULES,
        help=f"learning-rate schedule, stepped every batch (default {d.schedule})",
    )
    g.add_argument(
        "--step-size",
        type=int,
        help=f"step schedule: epochs between decays (default {d.step_size})",
    )
    g.add_argument(
        "--milestones",
        type=int,
        nargs="+",
        help=f"multistep schedule: epochs at which to decay (default {' '.join(map(str, d.milestones))})",
    )
    g.add_argument(
        "--gamma",
        type=float,
        help=f"decay factor of step/multistep (default {d.gamma})",
    )
    g.add_argument(
        "--warmup-epochs",
        type=float,
        help="linear warm-up length in epochs (default 0)",
    )
    g.add_argument("--label-smoothing", type=float, help="default 0")
    g = p.add_argument_group("augmentation")
    g.add_argument(
        "--crop",
        type=int,
        help=f"random-crop padding in pixels, 0 = off (default {d.crop})",
    )
    g.add_argument("--no-flip", action="store_true", help="no random horizontal flips")
    g.add_argument("--jitter", type=float, help="colour jitter amount, 0 = off (default 0)")
    g.add_argument(
        "--test-flip",
        action="store_true",
        help="test on the mean logits of each image and its mirror image (test-time flip)",
    )
    g = p.add_argument_group("run")
    g.add_argument("--seed", type=int, help=f"seed of everything random (default {d.seed})")
    g.add_argument(
        "--out",
        help="output directory, new or empty (default runs/train-<date>-<time>, made unique)",
    )
    g.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue the run in this directory (or from its last.npz) with its saved options; "
        f"only {', '.join(RESUME_OPTIONS)} may be given with it",
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g.add_argument("--no-prefetch", action="store_true", help="prepare batches in the main thread")
    p.set_defaults(run=run)


# Options that change nothing a run computes: they may be given with --resume.
RESUME_OPTIONS = ("--data-dir", "--no-download", "--no-progress", "--no-prefetch")
# Options whose config field has another name or the opposite sense.
_FLAG_FIELDS = {
    "no_download": ("download", False),
    "no_bn": ("batch_norm", False),
    "no_flip": ("flip", False),
    "no_prefetch": ("prefetch", False),
    "out": ("out_dir", None),
}
_NOT_CONFIG = ("command", "run", "resume", "no_progress")  # not part of a TrainConfig


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """A config from the given options; the rest keep :class:`TrainConfig`'s defaults."""
    fields = {}
    for dest, value in vars(args).items():
        if dest in _NOT_CONFIG:
            continue
        name, fixed = _FLAG_FIELDS.get(dest, (dest, None))
        fields[name] = value if fixed is None else fixed
    if fields.get("model", TrainConfig.model) not in models.names():
        raise ValueError(
            f"unknown model {fields['model']!r}; choose one of {', '.join(models.names())}"
        )
    dataset = fields.get("dataset", TrainConfig.dataset)
    if dataset not in data.names():
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(data.names())}")
    recipe = {k: v for k, v in DATASET_RECIPES.get(dataset, {}).items() if k not in fields}
    if recipe:
        settings = " ".join(
            f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}") for k, v in recipe.items()
        )
        print(f"{dataset} recipe: {settings} (give an option to override it)")
    return TrainConfig(**{**recipe, **fields})


def run(args: argparse.Namespace) -> int:
    progress = not getattr(args, "no_progress", False)
    if "resume" not in args:
        train(config_from_args(args), progress=progress)
        return 0
    refused = sorted(
        f"--{dest.replace('_', '-')}"
        for dest in vars(args)
        if dest not in (*_NOT_CONFIG, "data_dir", "no_download", "no_prefetch")
    )
    if refused:
        raise ValueError(
            f"--resume continues a run with the options it was started with, so "
            f"{', '.join(refused)} cannot be given with it (only {', '.join(RESUME_OPTIONS)} "
            "can); to train on with other options, start a new run with "
            "--init-from RUN_DIR/last.npz"
        )
    overrides = {}
    if "data_dir" in args:
        overrides["data_dir"] = args.data_dir
    if "no_download" in args:
        overrides["download"] = False
    if "no_prefetch" in args:
        overrides["prefetch"] = False
    train(resume=args.resume, overrides=overrides, progress=progress)
    return 0

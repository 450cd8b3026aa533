"""``nnscratch train``: train a model on a dataset (the synthetic set by default)."""

from __future__ import annotations

import argparse
import time

from nnscratch import data, models
from nnscratch.nn.init import CONV_INITS
from nnscratch.training import TrainConfig, train
from nnscratch.training.config import OPTIMIZERS, SCHEDULES

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
    )
    g = p.add_argument_group("data")
    g.add_argument(
        "--dataset",
        default=d.dataset,
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
        default=d.image_size,
        help=f"folder: resize images to this size (default {d.image_size})",
    )
    g.add_argument(
        "--val-fraction",
        type=float,
        default=d.val_fraction,
        help=f"share of train held out for validation (default {d.val_fraction})",
    )
    g = p.add_argument_group("model")
    g.add_argument(
        "--model", default=d.model, help=f"one of {', '.join(models.names())} (default {d.model})"
    )
    g.add_argument(
        "--stem",
        choices=["cifar", "imagenet"],
        default=d.stem,
        help=f"ResNet-18..152: 3x3 CIFAR stem or 7x7 + max-pool ImageNet stem (default {d.stem})",
    )
    g.add_argument(
        "--width", type=float, default=d.width, help=f"channel multiplier (default {d.width})"
    )
    g.add_argument(
        "--plain", action="store_true", help="train the plain twin (no shortcut connections)"
    )
    g.add_argument(
        "--no-bn", action="store_true", help="no batch norm anywhere (convolutions get biases)"
    )
    g.add_argument("--init", choices=CONV_INITS, default=d.init,
                   help=f"convolution initialisation; torch is PyTorch's layer default (default {d.init})")  # fmt: skip
    g.add_argument(
        "--init-from",
        metavar="PATH",
        help="start from these weights: an nnscratch checkpoint, a state-dict .npz, or a torchvision .pth; a head of another size is replaced",
    )
    g.add_argument(
        "--freeze-backbone", action="store_true", help="train only the head (with --init-from)"
    )
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, default=d.epochs, help=f"default {d.epochs}")
    g.add_argument("--batch-size", type=int, default=d.batch_size, help=f"default {d.batch_size}")
    g.add_argument(
        "--optimizer", choices=OPTIMIZERS, default=d.optimizer, help=f"default {d.optimizer}"
    )
    g.add_argument(
        "--lr", type=float, help="peak learning rate (default 0.1 for sgd, 1e-3 for adam/adamw)"
    )
    g.add_argument(
        "--momentum", type=float, default=d.momentum, help=f"SGD momentum (default {d.momentum})"
    )
    g.add_argument("--nesterov", action="store_true", help="Nesterov momentum")
    g.add_argument(
        "--weight-decay", type=float, default=d.weight_decay, help=f"default {d.weight_decay}"
    )
    g.add_argument(
        "--decay-bn-and-bias",
        action="store_true",
        help="also decay batch-norm parameters and biases (off by default)",
    )
    g.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default=d.schedule,
        help=f"learning-rate schedule, stepped every batch (default {d.schedule})",
    )
    g.add_argument(
        "--step-size",
        type=int,
        default=d.step_size,
        help=f"step schedule: epochs between decays (default {d.step_size})",
    )
    g.add_argument(
        "--milestones",
        type=int,
        nargs="+",
        default=d.milestones,
        help="multistep schedule: epochs at which to decay",
    )
    g.add_argument(
        "--gamma",
        type=float,
        default=d.gamma,
        help=f"decay factor of step/multistep (default {d.gamma})",
    )
    g.add_argument(
        "--warmup-epochs",
        type=float,
        default=d.warmup_epochs,
        help="linear warm-up length in epochs (default 0)",
    )
    g.add_argument("--label-smoothing", type=float, default=d.label_smoothing, help="default 0")
    g = p.add_argument_group("augmentation")
    g.add_argument(
        "--crop",
        type=int,
        default=d.crop,
        help=f"random-crop padding in pixels, 0 = off (default {d.crop})",
    )
    g.add_argument("--no-flip", action="store_true", help="no random horizontal flips")
    g.add_argument(
        "--jitter", type=float, default=d.jitter, help="colour jitter amount, 0 = off (default 0)"
    )
    g = p.add_argument_group("run")
    g.add_argument(
        "--seed", type=int, default=d.seed, help=f"seed of everything random (default {d.seed})"
    )
    g.add_argument("--out", help="output directory (default runs/train-<date>-<time>)")
    g.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue the run in this directory (its saved options are used)",
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g.add_argument("--no-prefetch", action="store_true", help="prepare batches in the main thread")
    p.set_defaults(run=run)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    if args.model not in models.names():
        raise ValueError(f"unknown model {args.model!r}; choose one of {', '.join(models.names())}")
    if args.dataset not in data.names():
        raise ValueError(
            f"unknown dataset {args.dataset!r}; choose one of {', '.join(data.names())}"
        )
    return TrainConfig(
        dataset=args.dataset, data_dir=args.data_dir, download=not args.no_download,
        n_train=args.n_train, n_test=args.n_test, pad_to=args.pad_to, image_size=args.image_size,
        val_fraction=args.val_fraction, model=args.model, stem=args.stem, width=args.width,
        plain=args.plain, batch_norm=not args.no_bn, init=args.init, init_from=args.init_from, freeze_backbone=args.freeze_backbone,
        epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
        momentum=args.momentum, nesterov=args.nesterov, weight_decay=args.weight_decay,
        decay_bn_and_bias=args.decay_bn_and_bias, schedule=args.schedule,
        step_size=args.step_size, milestones=args.milestones, gamma=args.gamma,
        warmup_epochs=args.warmup_epochs, label_smoothing=args.label_smoothing,
        crop=args.crop, flip=not args.no_flip, jitter=args.jitter, seed=args.seed,
        out_dir=args.out or time.strftime("runs/train-%Y%m%d-%H%M%S"),
        prefetch=not args.no_prefetch,
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    if args.resume:
        train(resume=args.resume, progress=not args.no_progress)
    else:
        train(config_from_args(args), progress=not args.no_progress)
    return 0

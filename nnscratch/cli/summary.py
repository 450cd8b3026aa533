"""``nnscratch summary MODEL|RUN``: the layer table of a model (output shapes, parameters)."""

from __future__ import annotations

import argparse
from pathlib import Path

from nnscratch import models
from nnscratch.training import load_checkpoint, memory
from nnscratch.training.builders import restore_run
from nnscratch.training.config import TrainConfig
from nnscratch.training.run_dir import checkpoint_in


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "summary",
        help="print a model's layers, output shapes and parameter counts",
        description="Print a model's layers with output shapes and parameter counts. Given a "
        "run directory of nnscratch train (or one of its checkpoints), the model is the run's, "
        "built from the options it was trained with; the model options below are then ignored "
        "and only --depth applies.",
    )
    p.add_argument(
        "model",
        help=f"model name ({', '.join(models.names())}), or a run directory or checkpoint",
    )
    p.add_argument("--num-classes", type=int, default=10, help="outputs of the head (default 10)")
    p.add_argument("--in-channels", type=int, default=3, help="image channels (default 3)")
    p.add_argument("--image-size", type=int, default=32, help="input height = width (default 32)")
    p.add_argument(
        "--stem",
        choices=["cifar", "imagenet"],
        default="cifar",
        help="ResNet-18..152 only: 3x3 CIFAR stem or 7x7 + max-pool ImageNet stem (default cifar)",
    )
    p.add_argument(
        "--width",
        type=float,
        default=TrainConfig.width,
        help=f"channel multiplier (default {TrainConfig.width:g}, as for train; "
        "--width 1 is the full network)",
    )
    p.add_argument("--plain", action="store_true", help="the plain twin (no shortcuts)")
    p.add_argument("--depth", type=int, default=2, help="how many levels of modules to list")
    p.set_defaults(run=run)


def model_kwargs(args: argparse.Namespace) -> dict:
    """Constructor arguments shared by the commands that build a model from flags."""
    kwargs = {
        "num_classes": args.num_classes,
        "in_channels": args.in_channels,
        "width": args.width,
        "residual": not args.plain,
    }
    if models.supports_stem(args.model):
        kwargs["stem"] = args.stem
    return kwargs


def run(args: argparse.Namespace) -> int:
    if args.depth < 1:
        raise ValueError(f"--depth must be at least 1, got {args.depth}")
    if args.model not in models.names() and Path(args.model).exists():
        return summarise_run(args)
    if args.image_size < 1:
        raise ValueError(f"--image-size must be positive, got {args.image_size}")
    shape = (args.in_channels, args.image_size, args.image_size)
    sizes = memory.footprint(args.model, shape, **model_kwargs(args))
    memory.check_fits(
        sizes.inference_bytes(batch_size=1),
        f"{args.model} at width {args.width:g} ({sizes.parameters:,} parameters)",
        "lower --width or --image-size",
    )
    model = models.create(args.model, **model_kwargs(args))
    model.summary((args.in_channels, args.image_size, args.image_size), depth=args.depth)
    return 0


def summarise_run(args: argparse.Namespace) -> int:
    """The table of a trained run's model, rebuilt as ``evaluate`` rebuilds it."""
    checkpoint = load_checkpoint(checkpoint_in(args.model))
    _, model, _ = restore_run(checkpoint, batch_size=1)
    model.summary(tuple(checkpoint["image_shape"]), depth=args.depth)
    return 0

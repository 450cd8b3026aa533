"""``nnscratch summary MODEL``: the layer table of a model (output shapes, parameters)."""

from __future__ import annotations

import argparse

from nnscratch import models
from nnscratch.training import memory
from nnscratch.training.config import TrainConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "summary",
        help="print a model's layers, output shapes and parameter counts",
        description="Print a model's layers with output shapes and parameter counts.",
    )
    p.add_argument("model", help=f"model name: {', '.join(models.names())}")
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
    if args.image_size < 1:
        raise ValueError(f"--image-size must be positive, got {args.image_size}")
    if args.depth < 1:
        raise ValueError(f"--depth must be at least 1, got {args.depth}")
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

"""The short training budget shared by ``nnscratch degradation`` and ``nnscratch lesion``."""

from __future__ import annotations

import argparse

from nnscratch import data
from nnscratch.cli.arguments.checks import check_positive
from nnscratch.experiments import networks
from nnscratch.experiments.short_training import SCHEDULES
from nnscratch.nn.init import CONV_INITS


def add_budget_arguments(p: argparse.ArgumentParser, *, steps: int, schedule: str) -> None:
    """The SGD budget, the network variant and the data of an experiment that trains twins."""
    p.add_argument(
        "--steps", type=int, default=steps, help=f"SGD steps per network (default {steps})"
    )
    p.add_argument("--batch-size", type=int, default=128, help="default 128")
    p.add_argument("--lr", type=float, default=0.1, help="(peak) learning rate (default 0.1)")
    p.add_argument("--momentum", type=float, default=0.9, help="default 0.9")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="default 1e-4 (He et al.)")
    p.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default=schedule,
        help="learning-rate schedule over the budget; step: lr/10 at 50%% and again at "
        f"75%% of the steps (He et al.) (default {schedule})",
    )
    p.add_argument("--no-bn", action="store_true", help="no batch norm (convs get biases)")
    p.add_argument(
        "--init", choices=CONV_INITS, default="he", help="conv initialisation (default he)"
    )
    p.add_argument(
        "--activation",
        choices=list(networks.ACTIVATIONS),
        default="relu",
        help="replace every ReLU by this (default relu)",
    )
    p.add_argument("--width", type=float, default=1.0, help="channel multiplier (default 1)")
    p.add_argument(
        "--dataset",
        default="synthetic",
        help=f"one of {', '.join(data.names())} (default synthetic)",
    )
    p.add_argument(
        "--data-dir", help="dataset directory (default $NNSCRATCH_DATA or ~/.cache/nnscratch)"
    )
    p.add_argument(
        "--n-train",
        type=int,
        help="training images: the synthetic set's size (default 10000), or a fixed "
        "stratified subset of a real dataset (default all)",
    )
    p.add_argument(
        "--n-test", type=int, help="test images, likewise (default 2000 synthetic, else all)"
    )


def budget_kwargs(args: argparse.Namespace) -> dict:
    """The arguments of :func:`add_budget_arguments`, checked, as experiment keywords."""
    if args.dataset not in data.names():
        raise ValueError(
            f"unknown dataset {args.dataset!r}; choose one of {', '.join(data.names())}"
        )
    check_positive(steps=args.steps, batch_size=args.batch_size, lr=args.lr, width=args.width)
    return {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "momentum": args.momentum,
        "weight_decay": args.weight_decay,
        "schedule": args.schedule,
        "batch_norm": not args.no_bn,
        "init": args.init,
        "activation": args.activation,
        "width": args.width,
        "dataset": args.dataset,
        "data_dir": args.data_dir,
        "n_train": args.n_train,
        "n_test": args.n_test,
    }

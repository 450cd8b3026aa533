"""``nnscratch degradation``: train plain and residual nets of two depths; deeper plain trains worse."""

from __future__ import annotations

import argparse
from pathlib import Path

from nnscratch import plot
from nnscratch.cli.arguments.budget import add_budget_arguments, budget_kwargs
from nnscratch.experiments import results
from nnscratch.experiments.degradation import degradation
from nnscratch.training.run_dir import check_output_dir, create_output_dir

EXAMPLES = """examples:
  nnscratch degradation                               # ResNet-20 and -56, plain and residual
  nnscratch degradation --steps 100 --width 0.5       # quicker
  nnscratch degradation --depths 20 32 44 56 --steps 1000
  nnscratch degradation --no-bn --init torch          # without batch norm, classic init
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "degradation",
        help="train plain and residual CIFAR ResNets of several depths for a short budget",
        description="Train the plain and the residual CIFAR ResNet of each depth for the "
        "same number of SGD steps on the same batches (He et al. 2015, Fig. 6): with "
        "batch norm the deeper plain net reaches a higher training error, the deeper "
        "residual net does not. Writes degradation.json, curves.csv (per step), test.csv "
        "(per evaluation) and degradation.png to the output directory.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--depths",
        type=int,
        nargs="+",
        default=[20, 56],
        help="CIFAR ResNet depths 6n+2 (default 20 56)",
    )
    add_budget_arguments(p, steps=300, schedule="constant")
    p.add_argument("--crop", type=int, default=4, help="random-crop padding, 0 = off (default 4)")
    p.add_argument("--no-flip", action="store_true", help="no random horizontal flips")
    p.add_argument(
        "--eval-every",
        type=int,
        default=50,
        help="measure the test split every this many steps, 0 = only at the end (default 50)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of weights and batches (default 0)")
    p.add_argument(
        "--out", help="output directory (default runs/degradation-<date>-<time>, made unique)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    budget = budget_kwargs(args)
    if args.eval_every < 0:
        raise ValueError(f"--eval-every must be >= 0, got {args.eval_every}")
    if args.out:
        check_output_dir(args.out)  # before the experiment, not after it
    result = degradation(
        args.depths,
        **budget,
        crop=args.crop,
        flip=not args.no_flip,
        eval_every=args.eval_every,
        seed=args.seed,
        progress=not args.no_progress,
        log=print,
    )
    out = create_output_dir(args.out, "degradation")  # None: a new runs/degradation-<date>-<time>
    write(result, out)
    print(f"wrote {out}")
    return 0


def write(result: dict, out: Path) -> None:
    """The JSON, the per-step and per-evaluation CSVs and the figure of a degradation result."""
    out.mkdir(parents=True, exist_ok=True)
    results.save_json(result, out / "degradation.json")
    curves, tests = [], []
    for run in result["runs"]:
        curves += [
            {"label": run["label"], "step": s, "train_loss": loss, "train_error": error}
            for s, loss, error in zip(
                run["step"], run["train_loss"], run["train_error"], strict=True
            )
        ]
        tests += [{"label": run["label"], **row} for row in run["eval"]]
    results.save_csv(curves, out / "curves.csv")
    results.save_csv(tests, out / "test.csv")
    plot.degradation_figure(result, out / "degradation.png")

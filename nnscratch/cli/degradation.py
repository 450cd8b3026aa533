"""``nnscratch degradation``: train plain and residual nets of two depths; deeper plain trains worse."""

from __future__ import annotations

import argparse
from pathlib import Path

from nnscratch import plot
from nnscratch.cli.arguments.budget import add_budget_arguments, budget_kwargs
from nnscratch.cli.arguments.seeds import add_seeds_argument, seeds_from
from nnscratch.experiments import results
from nnscratch.experiments.degradation import aggregate_line, degradation, final_errors
from nnscratch.training.run_dir import check_output_dir, create_output_dir

EXAMPLES = """examples:
  nnscratch degradation                               # ResNet-20 and -56, plain and residual
  nnscratch degradation --steps 100 --width 0.5       # quicker
  nnscratch degradation --depths 20 32 44 56 --steps 1000
  nnscratch degradation --seeds 0 1 2 --schedule step  # three seeds, lr/10 at 50% and 75%
  nnscratch degradation --dataset fashion_mnist --n-train 20000 --n-test 2000 --width 0.25
  nnscratch degradation --no-bn --init torch          # without batch norm, classic init
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "degradation",
        help="train plain and residual CIFAR ResNets of several depths for a short budget",
        description="Train the plain and the residual CIFAR ResNet of each depth for the "
        "same number of SGD steps on the same batches (He et al. 2015, Fig. 6): with "
        "batch norm the deeper plain net reaches a higher training error, the deeper "
        "residual net does not. With several --seeds, every run is repeated per seed and "
        "summarised as mean ± std. Writes degradation.json, curves.csv (per step and "
        "seed), test.csv (per evaluation and seed), curves_mean.csv (per step: mean, std, "
        "min, max over the seeds), final.csv (final errors per seed and over the seeds) "
        "and degradation.png to the output directory.",
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
    add_seeds_argument(p)
    p.add_argument(
        "--out", help="output directory (default runs/degradation-<date>-<time>, made unique)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    budget = budget_kwargs(args)
    seeds = seeds_from(args)
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
        seeds=seeds,
        progress=not args.no_progress,
        log=print,
    )
    print("over the seeds (mean ± sample std):")
    for row in result["aggregate"]:
        print(aggregate_line(row))
    out = create_output_dir(args.out, "degradation")  # None: a new runs/degradation-<date>-<time>
    write(result, out)
    print(f"wrote {out}")
    return 0


def write(result: dict, out: Path) -> None:
    """The JSON, the CSVs and the figure of a degradation result."""
    out.mkdir(parents=True, exist_ok=True)
    results.save_json(result, out / "degradation.json")
    curves, tests, finals = [], [], []
    for run in result["runs"]:
        key = {"label": run["label"], "seed": run["seed"]}
        curves += [
            {**key, "step": s, "train_loss": loss, "train_error": error}
            for s, loss, error in zip(
                run["step"], run["train_loss"], run["train_error"], strict=True
            )
        ]
        tests += [{**key, **row} for row in run["eval"]]
        train_error, test_error = final_errors(run)
        finals.append({**key, "train_error": train_error, "test_error": test_error})
    means = []
    for row in result["aggregate"]:
        c = row["curves"]
        means += [
            {
                "label": row["label"],
                "seeds": len(row["seeds"]),
                "step": s,
                **_columns("train_error", c["train_error"], k),
                **_columns("train_loss", c["train_loss"], k),
            }
            for k, s in enumerate(c["step"])
        ]
        finals.append(
            {
                "label": row["label"],
                "seed": "all",
                **_columns("train_error", row["train_error"]),
                **_columns("test_error", row["test_error"]),
            }
        )
    results.save_csv(curves, out / "curves.csv")
    results.save_csv(tests, out / "test.csv")
    results.save_csv(means, out / "curves_mean.csv")
    results.save_csv(finals, out / "final.csv")
    plot.degradation_figure(result, out / "degradation.png")


def _columns(name: str, values: dict, k: int | None = None) -> dict:
    """``{name: mean, name_std, name_min, name_max}`` of a spread (or of a band at ``k``)."""
    pick = (lambda v: v) if k is None else (lambda v: v[k])
    return {
        name: pick(values["mean"]),
        **{f"{name}_{stat}": pick(values[stat]) for stat in ("std", "min", "max")},
    }

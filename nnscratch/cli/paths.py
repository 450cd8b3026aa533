"""``nnscratch paths``: a residual net as an ensemble of shallow paths (Veit et al. 2016)."""

from __future__ import annotations

import argparse
from pathlib import Path

from nnscratch import plot
from nnscratch.cli.arguments.budget import add_budget_arguments, budget_kwargs
from nnscratch.cli.arguments.checks import check_positive
from nnscratch.experiments import networks, results
from nnscratch.experiments.paths import (
    net_paths,
    path_length_distribution,
    paths_study,
    summary_lines,
)
from nnscratch.training import load_checkpoint
from nnscratch.training.builders import build_model, dataset_split, restore_run
from nnscratch.training.run_dir import check_output_dir, checkpoint_in, create_output_dir

EXAMPLES = """examples:
  nnscratch paths                                     # ResNet-20 (width 0.5) and its plain twin
  nnscratch paths --model preact_resnet20             # pre-activation blocks
  nnscratch paths --samples 50 --draws 10             # more paths and deletions per point
  nnscratch paths --checkpoint runs/train-x/best.npz  # a model trained by nnscratch train
"""

WIDTH = 0.5  # the budget's default is 1; half the channels keep the default run to minutes


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "paths",
        help="paths of a residual net: gradient per path length, deleting and swapping blocks",
        description="A net of n residual blocks unrolls into 2^n paths, C(n, k) of length "
        "k (Veit et al. 2016). Measures the input gradient carried by sampled paths of each "
        "length (the backward routed through the branch of k blocks and the shortcut of the "
        "others), of the trained and the freshly initialised net, and the test accuracy "
        "after deleting k random blocks and after swapping same-shape blocks, residual vs "
        "plain. Without --checkpoint, first trains the model and its plain twin for --steps "
        "SGD steps. Writes paths.json, paths_gradients.csv, paths_deletion.csv, "
        "paths_swaps.csv and paths.png to the output directory.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="measure this checkpoint of nnscratch train on its test split instead",
    )
    p.add_argument(
        "--model",
        default="resnet20",
        help="model to train: resnet20, preact_resnet20, resnet<6n+2> ... (default resnet20)",
    )
    add_budget_arguments(p, steps=300, schedule="cosine")
    p.set_defaults(width=WIDTH)
    for action in p._actions:  # the shared help names the budget's own default width
        if action.dest == "width":
            action.help = f"channel multiplier (default {WIDTH})"
    p.add_argument("--samples", type=int, default=24, help="paths sampled per length (default 24)")
    p.add_argument(
        "--draws",
        type=int,
        default=6,
        help="random sets of deleted blocks, and of swaps, per point (default 6)",
    )
    p.add_argument("--max-swaps", type=int, default=4, help="most swaps in a row (default 4)")
    p.add_argument(
        "--images", type=int, default=64, help="test images of the gradient batch (default 64)"
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of weights, batches and draws (default 0)"
    )
    p.add_argument("--out", help="output directory (default runs/paths-<date>-<time>, made unique)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_positive(samples=args.samples, draws=args.draws)
    if args.max_swaps < 0:
        raise ValueError(f"max_swaps must be at least 0, got {args.max_swaps}")
    if args.images < 2:
        raise ValueError(f"images must be at least 2 (batch norm needs a batch), got {args.images}")
    if args.out:
        check_output_dir(args.out)  # before the experiment, not after it
    measure = dict(
        samples=args.samples,
        draws=args.draws,
        max_swaps=args.max_swaps,
        images=args.images,
        seed=args.seed,
    )
    if args.checkpoint:
        checkpoint = load_checkpoint(checkpoint_in(args.checkpoint))
        config, model, transform = restore_run(checkpoint)
        fresh = build_model(config, model.num_classes, checkpoint["image_shape"][0])
        measured = {
            "label": f"{'plain' if config.plain else 'residual'} {config.model}",
            "training": None,
            **net_paths(model, dataset_split(config, "test"), transform, initial=fresh, **measure),
        }
        for line in summary_lines(measured):
            print(line)
        result = {
            "config": {"checkpoint": str(args.checkpoint), **measure},
            "distribution": path_length_distribution(measured["deletion"]["blocks"]),
            "runs": [measured],
        }
    else:
        networks.check_model_name(args.model)
        result = paths_study(
            args.model,
            **budget_kwargs(args),
            **measure,
            progress=not args.no_progress,
            log=print,
        )
    out = create_output_dir(args.out, "paths")  # None: a new runs/paths-<date>-<time>
    write(result, out)
    print(f"wrote {out}")
    return 0


SPREAD = ("mean", "std", "min", "max")


def gradient_rows(result: dict) -> list[dict]:
    """One row per net, trained or initial, and path length."""
    return [
        {"label": run["label"], "when": when, "length": row["length"], "paths": row["paths"]}
        | {key: row[key] for key in ("exhaustive", *SPREAD, "total", "share")}
        for run in result["runs"]
        for when, gradients in (run["gradients"] or {}).items()
        if gradients is not None
        for row in gradients["lengths"]
    ]


def deletion_rows(result: dict) -> list[dict]:
    """One row per net and number of deleted blocks."""
    return [
        {"label": run["label"], "deleted": row["deleted"], "sets": len(row["sets"])}
        | {key: row[key] for key in SPREAD}
        for run in result["runs"]
        for row in run["deletion"]["rows"]
    ]


def swap_rows(result: dict) -> list[dict]:
    """One row per net and number of swaps, with the mean Kendall tau of the orders."""
    return [
        {"label": run["label"], "swaps": row["swaps"], "trials": len(row["orders"])}
        | {"mean_kendall_tau": sum(row["kendall_tau"]) / len(row["kendall_tau"])}
        | {key: row[key] for key in SPREAD}
        for run in result["runs"]
        for row in run["reordering"]["rows"]
    ]


def write(result: dict, out: Path) -> None:
    """The JSON, a CSV per measurement (gradients, deletions, swaps) and the figure."""
    out.mkdir(parents=True, exist_ok=True)
    results.save_json(result, out / "paths.json")
    results.save_csv(gradient_rows(result), out / "paths_gradients.csv")
    results.save_csv(deletion_rows(result), out / "paths_deletion.csv")
    results.save_csv(swap_rows(result), out / "paths_swaps.csv")
    plot.paths_figure(result, out / "paths.png")

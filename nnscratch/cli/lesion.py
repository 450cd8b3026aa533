"""``nnscratch lesion``: delete one block at a time from a trained net and measure test accuracy."""

from __future__ import annotations

import argparse
from pathlib import Path

from nnscratch import plot
from nnscratch.cli.arguments.budget import add_budget_arguments, budget_kwargs
from nnscratch.cli.arguments.seeds import add_seeds_argument, seeds_from
from nnscratch.experiments import networks, results
from nnscratch.experiments.lesion import (
    aggregate,
    aggregate_line,
    lesion,
    lesion_study,
    summary_line,
)
from nnscratch.training import load_checkpoint
from nnscratch.training.builders import dataset_split, restore_run
from nnscratch.training.run_dir import check_output_dir, checkpoint_in, create_output_dir

EXAMPLES = """examples:
  nnscratch lesion                                    # train ResNet-20 and its plain twin, lesion both
  nnscratch lesion --steps 200 --width 0.5            # quicker
  nnscratch lesion --seeds 0 1 2                      # three seeds: mean and spread per block
  nnscratch lesion --checkpoint runs/train-x/best.npz # lesion a model trained by nnscratch train
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "lesion",
        help="accuracy of a trained net with one block deleted, residual vs plain",
        description="Delete each block of a trained network in turn at test time and "
        "measure test accuracy (Veit et al. 2016). A block that keeps its shape is "
        "replaced by the identity; a block that changes shape keeps only its shortcut "
        "(the plain net: the parameter-free zero-padding map). Without --checkpoint, first "
        "trains the model and its plain twin for --steps SGD steps, once per seed of "
        "--seeds. Writes lesion.json, lesion.csv (per block and seed, and per block over "
        "the seeds: mean, std, min, max) and lesion.png to the output directory.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="lesion this checkpoint of nnscratch train on its test split instead",
    )
    p.add_argument(
        "--model",
        default="resnet20",
        help="model to train: resnet20, resnet56, resnet18, resnet<6n+2> ... (default resnet20)",
    )
    add_budget_arguments(p, steps=600, schedule="cosine")
    add_seeds_argument(p)
    p.add_argument(
        "--out", help="output directory (default runs/lesion-<date>-<time>, made unique)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    seeds = seeds_from(args)
    if args.out:
        check_output_dir(args.out)  # before the experiment, not after it
    if args.checkpoint:
        checkpoint = load_checkpoint(checkpoint_in(args.checkpoint))
        config, model, transform = restore_run(checkpoint)
        label = f"{'plain' if config.plain else 'residual'} {config.model}"
        result = lesion(model, dataset_split(config, "test"), transform)
        print(summary_line(label, result))
        runs = [
            {
                "label": label,
                "seed": config.seed,
                "residual": not config.plain,
                "training": None,
                "lesion": result,
            }
        ]
        result = {
            "config": {"checkpoint": str(args.checkpoint)},
            "runs": runs,
            "aggregate": aggregate(runs),
        }
    else:
        networks.check_model_name(args.model)
        result = lesion_study(
            args.model,
            **budget_kwargs(args),
            seeds=seeds,
            progress=not args.no_progress,
            log=print,
        )
        print("over the seeds (mean ± sample std):")
        for row in result["aggregate"]:
            print(aggregate_line(row))
    out = create_output_dir(args.out, "lesion")  # None: a new runs/lesion-<date>-<time>
    write(result, out)
    print(f"wrote {out}")
    return 0


def write(result: dict, out: Path) -> None:
    """The JSON, the per-block CSV (per seed, then over the seeds) and the bar chart."""
    out.mkdir(parents=True, exist_ok=True)
    results.save_json(result, out / "lesion.json")
    rows = [
        {
            "label": run["label"],
            "seed": run["seed"],
            "baseline_accuracy": run["lesion"]["baseline_accuracy"],
            **row,
        }
        for run in result["runs"]
        for row in run["lesion"]["blocks"]
    ]
    rows += [
        {
            "label": net["label"],
            "seed": "all",
            "baseline_accuracy": net["baseline_accuracy"]["mean"],
            "name": block["name"],
            "method": block["method"],
            **{
                f"{key}{'' if stat == 'mean' else '_' + stat}": block[key][stat]
                for key in ("accuracy", "drop")
                for stat in ("mean", "std", "min", "max")
            },
        }
        for net in result["aggregate"]
        for block in net["blocks"]
    ]
    results.save_csv(rows, out / "lesion.csv")
    plot.lesion_figure(result, out / "lesion.png")

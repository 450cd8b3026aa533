"""``nnscratch lesion``: delete one block at a time from a trained net and measure test accuracy."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from nnscratch import data, plot
from nnscratch.experiments import common
from nnscratch.experiments.lesion import lesion, lesion_study, summary_line
from nnscratch.nn.init import CONV_INITS
from nnscratch.training import load_checkpoint
from nnscratch.training.config import SCHEDULES
from nnscratch.training.setup import dataset_split, restore_run

EXAMPLES = """examples:
  nnscratch lesion                                    # train ResNet-20 and its plain twin, lesion both
  nnscratch lesion --steps 200 --width 0.5            # quicker
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
        "trains the model and its plain twin for --steps SGD steps. Writes lesion.json, "
        "lesion.csv and lesion.png to the output directory.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--checkpoint", metavar="PATH",
                   help="lesion this checkpoint of nnscratch train on its test split instead")  # fmt: skip
    p.add_argument("--model", default="resnet20",
                   help="model to train: resnet20, resnet56, resnet18, resnet<6n+2> ... (default resnet20)")  # fmt: skip
    p.add_argument("--steps", type=int, default=600, help="SGD steps per twin (default 600)")
    p.add_argument("--batch-size", type=int, default=128, help="default 128")
    p.add_argument("--lr", type=float, default=0.1, help="peak learning rate (default 0.1)")
    p.add_argument("--momentum", type=float, default=0.9, help="default 0.9")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="default 1e-4")
    p.add_argument("--schedule", choices=SCHEDULES, default="cosine",
                   help="learning-rate schedule over the budget (default cosine)")  # fmt: skip
    p.add_argument("--no-bn", action="store_true", help="no batch norm (convs get biases)")
    p.add_argument(
        "--init", choices=CONV_INITS, default="he", help="conv initialisation (default he)"
    )
    p.add_argument("--activation", choices=list(common.ACTIVATIONS), default="relu",
                   help="replace every ReLU by this (default relu)")  # fmt: skip
    p.add_argument("--width", type=float, default=1.0, help="channel multiplier (default 1)")
    p.add_argument("--dataset", default="synthetic",
                   help=f"one of {', '.join(data.names())} (default synthetic)")  # fmt: skip
    p.add_argument(
        "--data-dir", help="dataset directory (default $NNSCRATCH_DATA or ~/.cache/nnscratch)"
    )
    p.add_argument("--n-train", type=int, help="synthetic set: training images (default 10000)")
    p.add_argument("--n-test", type=int, help="synthetic set: test images (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of weights and batches (default 0)")
    p.add_argument("--out", help="output directory (default runs/lesion-<date>-<time>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out or time.strftime("runs/lesion-%Y%m%d-%H%M%S"))
    if args.checkpoint:
        checkpoint = load_checkpoint(args.checkpoint)
        config, model, transform = restore_run(checkpoint)
        label = f"{'plain' if config.plain else 'residual'} {config.model}"
        result = lesion(model, dataset_split(config, "test"), transform)
        print(summary_line(label, result))
        result = {"config": {"checkpoint": str(args.checkpoint)},
                  "runs": [{"label": label, "residual": not config.plain, "training": None,
                            "lesion": result}]}  # fmt: skip
    else:
        common.check_model_name(args.model)
        if args.dataset not in data.names():
            raise ValueError(
                f"unknown dataset {args.dataset!r}; choose one of {', '.join(data.names())}"
            )
        common.check_positive(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                              width=args.width)  # fmt: skip
        result = lesion_study(args.model, steps=args.steps, batch_size=args.batch_size,
                              lr=args.lr, momentum=args.momentum,
                              weight_decay=args.weight_decay, schedule=args.schedule,
                              batch_norm=not args.no_bn, init=args.init,
                              activation=args.activation, width=args.width,
                              dataset=args.dataset, data_dir=args.data_dir,
                              n_train=args.n_train, n_test=args.n_test, seed=args.seed,
                              progress=not args.no_progress, log=print)  # fmt: skip
    write(result, out)
    print(f"wrote {out}")
    return 0


def write(result: dict, out: Path) -> None:
    """The JSON, the per-block CSV and the bar chart of a lesion result."""
    out.mkdir(parents=True, exist_ok=True)
    common.save_json(result, out / "lesion.json")
    rows = [{"label": run["label"], "baseline_accuracy": run["lesion"]["baseline_accuracy"], **row}
            for run in result["runs"] for row in run["lesion"]["blocks"]]  # fmt: skip
    common.save_csv(rows, out / "lesion.csv")
    plot.lesion_figure(result, out / "lesion.png")

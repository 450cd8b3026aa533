"""``nnscratch gradflow``: per-layer gradient norms at initialisation, plain vs residual, per regime."""

from __future__ import annotations

import argparse
from pathlib import Path

from nnscratch import plot
from nnscratch.cli.arguments.checks import check_positive
from nnscratch.experiments import networks, results
from nnscratch.experiments.gradflow import (
    DEFAULT_MODELS,
    DEFAULT_REGIMES,
    REGIMES,
    format_table,
    regimes,
)
from nnscratch.training.run_dir import check_output_dir, create_output_dir

EXAMPLES = """examples:
  nnscratch gradflow                                  # ResNet-20/56/110 x three regimes
  nnscratch gradflow --models resnet18 --regimes bn_he no_bn_he
  nnscratch gradflow --models resnet20 --regimes no_bn_xavier --activation tanh
  nnscratch gradflow --regimes no_bn_torch --dtype float32   # plain-110's first grads underflow to 0
  nnscratch gradflow --steps 20 --lr 0.01             # after 20 SGD steps instead of at init

regimes:
""" + "\n".join(f"  {key:<14}{r['label']}" for key, r in REGIMES.items())


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "gradflow",
        help="gradient norms per layer at initialisation: plain vs residual, with/without BN",
        description="For each model, regime (batch norm on/off, initialisation) and twin "
        "(plain, residual): one forward and backward pass on a fixed batch in train mode, "
        "recording every conv's weight-gradient norm, |dL/dx| and the gradient ledger at "
        "each block, block output statistics, and the ratio of the first conv's gradient "
        "norm to the last one's. Writes gradflow.json, ratios.csv, layers.csv, blocks.csv, "
        "ratios.png, gradflow.png and ledger-<model>.png to the output directory.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--models",
        nargs="+",
        default=list(DEFAULT_MODELS),
        metavar="MODEL",
        help="model names, e.g. resnet20 resnet56 resnet110 resnet18, or "
        "resnet<6n+2> for any CIFAR depth (default: %(default)s)",
    )
    p.add_argument(
        "--regimes",
        nargs="+",
        default=list(DEFAULT_REGIMES),
        metavar="REGIME",
        help=f"any of {', '.join(REGIMES)} (default: %(default)s)",
    )
    p.add_argument(
        "--activation",
        choices=list(networks.ACTIVATIONS),
        default="relu",
        help="replace every ReLU by this (default relu)",
    )
    p.add_argument("--width", type=float, default=1.0, help="channel multiplier (default 1)")
    p.add_argument("--batch-size", type=int, default=32, help="images in the batch (default 32)")
    p.add_argument(
        "--labels",
        choices=["data", "random"],
        default="data",
        help="the images' own labels or uniform random ones (default data)",
    )
    p.add_argument(
        "--dataset",
        default="synthetic",
        help="where the batch comes from (default synthetic; others must be on disk)",
    )
    p.add_argument(
        "--data-dir", help="dataset directory (default $NNSCRATCH_DATA or ~/.cache/nnscratch)"
    )
    p.add_argument(
        "--steps",
        type=int,
        default=0,
        help="SGD steps before measuring (default 0: at initialisation)",
    )
    p.add_argument(
        "--lr", type=float, default=0.01, help="learning rate of those steps (default 0.01)"
    )
    p.add_argument(
        "--dtype",
        choices=list(networks.DTYPES),
        default="float64",
        help="precision of the measurement (default float64: no underflow)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the weights and the batch (default 0)"
    )
    p.add_argument(
        "--out", help="output directory (default runs/gradflow-<date>-<time>, made unique)"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    for name in args.models:
        networks.check_model_name(name)
    unknown = [r for r in args.regimes if r not in REGIMES]
    if unknown:
        raise ValueError(
            f"unknown regime(s) {', '.join(unknown)}; choose from {', '.join(REGIMES)}"
        )
    check_positive(width=args.width, lr=args.lr)
    if args.batch_size < 2:
        raise ValueError(
            f"--batch-size must be at least 2 (batch norm needs it), got {args.batch_size}"
        )
    if args.steps < 0:
        raise ValueError(f"--steps must be >= 0, got {args.steps}")
    if args.out:
        check_output_dir(args.out)  # before the experiment, not after it
    result = regimes(
        args.models,
        args.regimes,
        activation=args.activation,
        width=args.width,
        batch_size=args.batch_size,
        labels=args.labels,
        dataset=args.dataset,
        data_dir=args.data_dir,
        steps=args.steps,
        lr=args.lr,
        dtype=args.dtype,
        seed=args.seed,
    )
    print(format_table(result["table"]))
    out = create_output_dir(args.out, "gradflow")  # None: a new runs/gradflow-<date>-<time>
    write(result, out)
    print(f"wrote {out}")
    return 0


def write(result: dict, out: Path) -> None:
    """The JSON, the three CSV tables and the figures of a :func:`regimes` result."""
    out.mkdir(parents=True, exist_ok=True)
    results.save_json(result, out / "gradflow.json")
    results.save_csv(result["table"], out / "ratios.csv")
    layers, blocks = [], []
    for run in result["runs"]:
        key = {
            "regime": run["regime"],
            "model": run["config"]["model"],
            "residual": run["config"]["residual"],
        }
        layers += [{**key, "index": i, **conv} for i, conv in enumerate(run["convs"])]
        blocks += [{**key, **block} for block in run["blocks"]]
    results.save_csv(layers, out / "layers.csv")
    results.save_csv(blocks, out / "blocks.csv")
    plot.ratio_figure(result["table"], out / "ratios.png")
    plot.gradflow_figure(result["runs"], out / "gradflow.png")
    for model in dict.fromkeys(r["config"]["model"] for r in result["runs"]):
        residual_runs = [
            r for r in result["runs"] if r["config"]["model"] == model and r["config"]["residual"]
        ]
        plot.ledger_figure(residual_runs, out / f"ledger-{model}.png")

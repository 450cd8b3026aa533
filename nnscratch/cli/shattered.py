"""``nnscratch shattered``: the input gradient along a line of images, plain vs residual."""

from __future__ import annotations

import argparse
from pathlib import Path

from nnscratch import plot
from nnscratch.experiments import networks, results
from nnscratch.experiments.shattered import (
    DEFAULT_DEPTHS,
    format_shattered_table,
    shattered_study,
)
from nnscratch.training.run_dir import check_output_dir, create_output_dir

EXAMPLES = """examples:
  nnscratch shattered                                 # depths 8 20 56 110, with and without BN
  nnscratch shattered --depths 20 110 --batch-norm on --points 512
  nnscratch shattered --width 1 --image-size 32 --seed 1
  nnscratch shattered --family preact_resnet          # another family of CIFAR nets, once built
"""

BATCH_NORM = {"both": (True, False), "on": (True,), "off": (False,)}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "shattered",
        help="input gradients along a line of images: noise in deep plain nets, not in resnets",
        description="The shattered-gradients experiment (Balduzzi et al. 2017): for each "
        "depth, with and without batch norm, the plain and the residual net at "
        "initialisation, the gradient of a fixed projection of the logits, f = u . logits, "
        "with respect to the input at P points of the line x0 + t v (t in [-1, 1], |v| = "
        "span |x0|). Prints and plots s(t), the derivative of f along the line, and its "
        "autocorrelation r(k) at lag k; c(k) is the mean cosine of the full gradients k "
        "points apart. Batch norm runs in eval mode on statistics of separate random "
        "images, so each point's gradient is its own. Writes shattered.json, shattered.csv "
        "and shattered.png to the output directory.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--depths",
        type=int,
        nargs="+",
        default=list(DEFAULT_DEPTHS),
        help="depths 6n+2, appended to --family (default: %(default)s)",
    )
    p.add_argument(
        "--family",
        default="resnet",
        help="model name before the depth: resnet gives resnet20 ... (default resnet)",
    )
    p.add_argument(
        "--batch-norm",
        choices=list(BATCH_NORM),
        default="both",
        help="with batch norm (on), without (off) or both (default both)",
    )
    p.add_argument("--points", type=int, default=256, help="points on the line (default 256)")
    p.add_argument(
        "--span",
        type=float,
        default=1.0,
        help="|v| / |x0|: the line runs from x0 - v to x0 + v (default 1)",
    )
    p.add_argument("--width", type=float, default=0.5, help="channel multiplier (default 0.5)")
    p.add_argument(
        "--image-size", type=int, default=16, help="height and width of the images (default 16)"
    )
    p.add_argument("--channels", type=int, default=3, help="channels of the images (default 3)")
    p.add_argument(
        "--dtype",
        choices=list(networks.DTYPES),
        default="float64",
        help="precision of the gradients (default float64)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the weights, the line and u (default 0)"
    )
    p.add_argument(
        "--out", help="output directory (default runs/shattered-<date>-<time>, made unique)"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.out:
        check_output_dir(args.out)  # before the experiment, not after it
    result = shattered_study(  # bad values fail before any network runs
        args.depths,
        family=args.family,
        batch_norm=BATCH_NORM[args.batch_norm],
        width=args.width,
        image_size=args.image_size,
        channels=args.channels,
        points=args.points,
        span=args.span,
        dtype=args.dtype,
        seed=args.seed,
    )
    print(format_shattered_table(result["table"]))
    out = create_output_dir(args.out, "shattered")  # None: a new runs/shattered-<date>-<time>
    write(result, out)
    print(f"wrote {out}")
    return 0


def write(result: dict, out: Path) -> None:
    """The JSON (with the curves), the summary CSV and the figure of a shattered study."""
    out.mkdir(parents=True, exist_ok=True)
    results.save_json(result, out / "shattered.json")
    results.save_csv(result["table"], out / "shattered.csv")
    plot.shattered_figure(result, out / "shattered.png")

"""``nnscratch evaluate CKPT``: accuracy and per-class accuracy of a trained model."""

from __future__ import annotations

import argparse
import json
import sys

from nnscratch import plot
from nnscratch.cli.arguments.checks import check_new_file
from nnscratch.cli.arguments.trained_run import add_checkpoint_arguments, load_trained_run
from nnscratch.training import evaluate
from nnscratch.training.metrics import confusion_matrix, per_class_accuracy


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="accuracy and per-class accuracy of a checkpoint on a split",
        description="Evaluate a training checkpoint (best.npz or last.npz of a run) on the "
        "test split of the dataset it was trained on, with that run's normalisation.",
    )
    add_checkpoint_arguments(p)
    p.add_argument(
        "--confusion",
        metavar="PNG",
        help="also draw the confusion matrix to this new file (an existing one is refused)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.confusion:
        check_new_file(args.confusion, "evaluate")  # before any work
    checkpoint, config, model, transform, dataset = load_trained_run(args)
    result = evaluate(model, dataset, transform, args.batch_size, flip=config.test_flip)
    classes = checkpoint["classes"]
    counts = confusion_matrix(result.labels, result.predictions, len(classes))
    per_class = dict(zip(classes, map(float, per_class_accuracy(counts))))
    if args.confusion:
        plot.confusion_figure(
            counts, classes, args.confusion, title=f"{args.split} accuracy {result.accuracy:.2%}"
        )
    if args.json:
        print(
            json.dumps(
                {
                    "split": args.split,
                    "accuracy": result.accuracy,
                    "loss": result.loss,
                    "images": len(dataset),
                    "per_class_accuracy": per_class,
                },
                indent=1,
            )
        )
        report_figure(args, sys.stderr)  # stdout stays one JSON document
        return 0
    print(
        f"{config.model} on {config.dataset} ({args.split}, {len(dataset)} images): "
        f"accuracy {result.accuracy:.2%}, loss {result.loss:.4f}"
    )
    width = max(len(c) for c in classes)
    for name, accuracy in per_class.items():
        print(f"  {name:<{width}}  {accuracy:7.2%}")
    report_figure(args, sys.stdout)
    return 0


def report_figure(args: argparse.Namespace, file) -> None:
    """One line naming the confusion-matrix figure, if one was asked for."""
    if args.confusion:
        print(f"confusion matrix written to {args.confusion}", file=file)

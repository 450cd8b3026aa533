"""``--seeds``: the seeds an experiment is repeated over (``--seed`` is the same option)."""

from __future__ import annotations

import argparse

from nnscratch.experiments.seeds import check_seeds


def add_seeds_argument(p: argparse.ArgumentParser) -> None:
    """``--seeds 0 1 2``; each seed draws new weights and a new batch order."""
    p.add_argument(
        "--seeds",
        "--seed",
        nargs="*",
        default=["0"],
        metavar="SEED",
        help="repeat over these seeds (distinct integers >= 0), each with new weights and "
        "a new batch order; results keep every run and add mean, std, min and max over "
        "the seeds (default 0; --seed 3 = one seed)",
    )


def seeds_from(args: argparse.Namespace) -> list[int]:
    """The checked seeds of :func:`add_seeds_argument`; a ValueError names what is wrong."""
    try:
        seeds = [int(s) for s in args.seeds]
    except ValueError:
        raise ValueError(f"--seeds must be integers >= 0, got {' '.join(args.seeds)}") from None
    try:
        return check_seeds(seeds)
    except ValueError as error:
        raise ValueError(f"--{error}") from None

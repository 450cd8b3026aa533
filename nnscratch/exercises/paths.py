"""Exercises: a residual net as a collection of paths (Veit et al. 2016).

A net of n residual blocks unrolls into 2^n paths, one per choice of side (branch or
shortcut) at each block; a path that takes the branch of k blocks has length k, and
C(n, k) paths have that length. Backward through one path passes the gradient through the
chosen side of each block only, last block first; the routed gradients of all 2^n paths
add up to the full backward (:mod:`nnscratch.experiments.paths`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np

from nnscratch.exercises.checking import Case, Exercise, Mistake, Output, as_floats


# ----------------------------------------------------------------------- path_length_counts
def path_length_counts(n: int) -> np.ndarray:
    """counts[k] = C(n, k), the number of paths of length k, for k = 0..n (n + 1 entries)."""
    return np.array([math.comb(n, k) for k in range(n + 1)], dtype=np.float64)


def _count_cases() -> list[Case]:
    return [
        Case(words, {"n": n})
        for words, n in (
            ("n = 1 (one block: two paths)", 1),
            ("n = 3 (ResNet-8)", 3),
            ("n = 9 (ResNet-20)", 9),
            ("n = 27 (ResNet-56)", 27),
            ("n = 54 (ResNet-110)", 54),
        )
    ]


PATH_LENGTH_COUNTS = Exercise(
    name="path_length_counts",
    title="how many paths of each length a net of n residual blocks has",
    signature="path_length_counts(n) -> counts",
    task="""
A net of n residual blocks unrolls into 2^n paths: at each block a path takes either the
branch or the shortcut. A path's length is the number of blocks whose branch it takes
(0 for the path of shortcuts only, n for the path through every branch). Return counts,
n + 1 numbers (a numpy array or a list): counts[k] is the number of paths of length k,
for k = 0, 1, ..., n. They add up to 2^n. Python's math.comb may help.
""",
    outputs=(Output("counts"),),
    reference=path_length_counts,
    cases=_count_cases,
    run=as_floats,
    mistakes=(
        Mistake(
            "2^k counts the ways k blocks can each pick a side; a path of length k is a choice "
            "of *which* k of the n blocks take the branch (the other n - k take the "
            "shortcut)",
            lambda n: [2**k for k in range(n + 1)],
        ),
        Mistake(
            "the lengths run from 0 (every block's shortcut) to n (every block's branch): "
            "that is n + 1 counts, k = 0..n (range(n + 1))",
            lambda n: [math.comb(n, k) for k in range(n)],
        ),
        Mistake(
            "those are the counts of n + 1 blocks: the paths of n blocks have lengths 0..n",
            lambda n: [math.comb(n + 1, k) for k in range(n + 2)],
        ),
        Mistake(
            "those are the probabilities of each length (the counts divided by 2^n); the "
            "exercise asks for the counts themselves",
            lambda n: [math.comb(n, k) / 2**n for k in range(n + 1)],
        ),
        Mistake(
            "n! / (n - k)! counts ordered choices; a path is a *set* of k blocks (their order "
            "is the net's)",
            lambda n: [math.perm(n, k) for k in range(n + 1)],
        ),
    ),
)


# ----------------------------------------------------------------------- routed_gradient
def routed_gradient(
    dy: np.ndarray, backwards: Sequence[tuple[Callable, Callable]], path: Sequence[bool]
) -> np.ndarray:
    """The input gradient along one path: last block first, each block's chosen side only."""
    d = dy
    for (branch_backward, shortcut_backward), branch in zip(
        reversed(backwards), reversed(path), strict=True
    ):
        d = branch_backward(d) if branch else shortcut_backward(d)
    return d


class _DenseBlock:
    """y = relu(W2 relu(W1 x) + S x) on rows x (N, D_in): S the identity, or a matrix when
    the width changes. Its backward, from the block's output to its input, split by side."""

    def __init__(self, d_in: int, d_out: int, rng: np.random.Generator):
        self.w1 = rng.standard_normal((d_out, d_in)) * math.sqrt(2 / d_in)
        self.w2 = rng.standard_normal((d_out, d_out)) * math.sqrt(1 / d_out)
        self.s = None if d_in == d_out else rng.standard_normal((d_out, d_in)) / math.sqrt(d_in)

    def forward(self, x: np.ndarray):
        """y and the pair (branch_backward, shortcut_backward) at this x."""
        h = x @ self.w1.T
        shortcut = x if self.s is None else x @ self.s.T
        out = np.maximum(h, 0) @ self.w2.T + shortcut
        y = np.maximum(out, 0)

        def branch_backward(d, out=out, h=h):
            d = (d * (out > 0)) @ self.w2
            return (d * (h > 0)) @ self.w1

        def shortcut_backward(d, out=out):
            d = d * (out > 0)
            return d if self.s is None else d @ self.s

        return y, (branch_backward, shortcut_backward)


def _routing_cases() -> list[Case]:
    rng = np.random.default_rng(91)
    cases = []
    for words, batch, widths, path in (
        (
            "batch 2, 3 blocks of width 4, path: branch, branch, shortcut",
            2,
            (4, 4, 4, 4),
            (1, 1, 0),
        ),
        (
            "batch 1, 4 blocks, width 3 -> 5 at block 1, path: shortcut, branch, branch, branch",
            1,
            (3, 3, 5, 5, 5),
            (0, 1, 1, 1),
        ),
        ("batch 3, 2 blocks of width 6, path: both branches", 3, (6, 6, 6), (1, 1)),
        (
            "batch 2, 3 blocks, widths 2 -> 4 -> 4 -> 3, path: every shortcut (length 0)",
            2,
            (2, 4, 4, 3),
            (0, 0, 0),
        ),
        (
            "batch 2, 5 blocks of width 3, path: branch at the first block only",
            2,
            (3, 3, 3, 3, 3, 3),
            (1, 0, 0, 0, 0),
        ),
    ):
        x = rng.standard_normal((batch, widths[0]))
        backwards = []
        for d_in, d_out in itertools.pairwise(widths):
            x, sides = _DenseBlock(d_in, d_out, rng).forward(x)
            backwards.append(sides)
        args = {
            "dy": rng.standard_normal(x.shape),
            "backwards": backwards,
            "path": tuple(bool(b) for b in path),
        }
        cases.append(Case(words, args))
    return cases


def _in_forward_order(dy, backwards, path):
    d = dy
    for (branch, shortcut), b in zip(backwards, path):
        d = branch(d) if b else shortcut(d)
    return d


def _both_sides(dy, backwards, path):
    d = dy
    for branch, shortcut in reversed(backwards):
        d = branch(d) + shortcut(d)
    return d


def _sides_swapped(dy, backwards, path):
    d = dy
    for (branch, shortcut), b in zip(reversed(backwards), reversed(path)):
        d = shortcut(d) if b else branch(d)
    return d


def _shortcut_passes_d(dy, backwards, path):
    d = dy
    for (branch, _), b in zip(reversed(backwards), reversed(path)):
        d = branch(d) if b else d
    return d


ROUTED_GRADIENT = Exercise(
    name="routed_gradient",
    title="the backward pass through one path of a residual net",
    signature="routed_gradient(dy, backwards, path) -> dx",
    task="""
A net of n residual blocks, block i computing y = relu(branch(x) + shortcut(x)). backwards
lists, for each block in forward order, a pair (branch_backward, shortcut_backward): each
takes the gradient at the block's output and returns the gradient at its input through
that side only (both include the block's ReLU). The full backward would pass
branch_backward(d) + shortcut_backward(d) at every block. path has one bool per block,
in forward order: True takes block i's branch, False its shortcut. Return dx, the
gradient that reaches the input along that path alone, starting from dy at the output.
dx has the input's shape (a block whose shortcut changes the width changes the shape).
""",
    outputs=(Output("dx"),),
    reference=routed_gradient,
    cases=_routing_cases,
    mistakes=(
        Mistake(
            "backward visits the blocks from the last to the first: start from dy at the "
            "output and apply the last block's chosen side first",
            _in_forward_order,
        ),
        Mistake(
            "that is the full backward, every path at once (the fan-out of notebook 03); on one "
            "path each block passes the gradient through one side only",
            _both_sides,
        ),
        Mistake(
            "the sides are swapped: path[i] True means block i's branch (branch_backward), "
            "False its shortcut",
            _sides_swapped,
        ),
        Mistake(
            "a shortcut is not a free pass: its backward goes through the block's ReLU (and "
            "a projection where the width changes)",
            _shortcut_passes_d,
        ),
    ),
)

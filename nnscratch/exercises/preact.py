"""Exercises on pre-activation blocks (He et al. 2016, "Identity Mappings in Deep Residual
Networks"): a block's backward pass, with nothing after the `+`, and the gradient of a whole
stack of them, dL/dx_l = dL/dx_L + the branches' parts."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from nnscratch.exercises.checking import Case, Exercise, Mistake, Output, image_words
from nnscratch.functional.activation import relu_backward, relu_forward
from nnscratch.functional.batch_norm import batch_norm2d_backward, batch_norm2d_forward
from nnscratch.functional.conv import conv2d_backward, conv2d_forward


def preact_residual_backward(
    dy, out, pre_backward: Callable, branch_backward: Callable, shortcut_backward: Callable, shared
) -> np.ndarray:
    """dx of a pre-activation block: dy reaches both sides unmasked (nothing follows the `+`);
    the shared BN-ReLU, when there is one, takes the sum of both sides' gradients."""
    if shared:  # h = pre(x) feeds the branch and the shortcut
        return pre_backward(branch_backward(dy) + shortcut_backward(dy))
    return pre_backward(branch_backward(dy)) + shortcut_backward(dy)  # the shortcut carries x


def unrolled_gradient(d_top, branch_backwards: Sequence[Callable]) -> np.ndarray:
    """dL/dx_0 of x_{i+1} = x_i + F_i(x_i): from the top block down, g = g + F_i'(x_i)^T g."""
    g = d_top
    for branch_backward in reversed(branch_backwards):
        g = g + branch_backward(g)
    return g


class _PreActBlock:
    """A small pre-activation block on the readable ops, batch norm in training mode:

    pre = BN -> ReLU; branch = conv3x3(stride) -> BN -> ReLU -> conv3x3; shortcut = the
    identity or a 1x1 projection with the stride. ``shared``: pre(x) feeds the shortcut too
    (out = branch(h) + shortcut(h), h = pre(x)); otherwise out = branch(pre(x)) + shortcut(x).
    """

    def __init__(self, C_in: int, C_out: int, stride: int, shared: bool, rng: np.random.Generator):
        def he(*shape):
            return rng.standard_normal(shape) * math.sqrt(2 / math.prod(shape[1:]))

        self.stride, self.shared = stride, shared
        self.gamma1, self.beta1 = rng.uniform(0.6, 1.4, C_in), rng.normal(0, 0.3, C_in)
        self.gamma2, self.beta2 = rng.uniform(0.6, 1.4, C_out), rng.normal(0, 0.3, C_out)
        self.w1, self.w2 = he(C_out, C_in, 3, 3), he(C_out, C_out, 3, 3)
        self.projection = he(C_out, C_in, 1, 1) if stride != 1 or C_in != C_out else None

    @staticmethod
    def _bn(x, gamma, beta):
        C = x.shape[1]  # fresh running statistics: the forward updates them in place
        return batch_norm2d_forward(x, gamma, beta, np.zeros(C), np.ones(C), training=True)

    def parts(self, x: np.ndarray):
        """out and the backward functions of pre, branch and shortcut at this x."""
        p, bn1 = self._bn(x, self.gamma1, self.beta1)
        h, relu1 = relu_forward(p)
        u, conv1 = conv2d_forward(h, self.w1, stride=self.stride, padding=1)
        v, bn2 = self._bn(u, self.gamma2, self.beta2)
        r, relu2 = relu_forward(v)
        branch, conv2 = conv2d_forward(r, self.w2, padding=1)
        source = h if self.shared else x
        if self.projection is None:
            shortcut, shortcut_backward = source, lambda d: d
        else:
            shortcut, projection = conv2d_forward(source, self.projection, stride=self.stride)

            def shortcut_backward(d):
                return conv2d_backward(d, projection)[0]

        def pre_backward(d):
            return batch_norm2d_backward(relu_backward(d, relu1), bn1)[0]

        def branch_backward(d):
            dr = relu_backward(conv2d_backward(d, conv2)[0], relu2)
            return conv2d_backward(batch_norm2d_backward(dr, bn2)[0], conv1)[0]

        return branch + shortcut, pre_backward, branch_backward, shortcut_backward

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.parts(x)[0]


# ----------------------------------------------------------------------- the block
def _block_cases() -> list[Case]:
    rng = np.random.default_rng(23)
    cases = []
    for x_shape, C_out, stride, shared, words in (
        ((2, 3, 5, 5), 3, 1, False, "identity shortcut"),
        ((3, 2, 4, 6), 2, 1, False, "identity shortcut"),
        ((2, 3, 5, 4), 3, 1, True, "identity shortcut, BN-ReLU shared (a net's first block)"),
        ((2, 2, 6, 5), 4, 2, True, "1x1 projection shortcut, BN-ReLU shared"),
    ):
        block = _PreActBlock(x_shape[1], C_out, stride, shared, rng)
        x = rng.standard_normal(x_shape)
        out, pre_backward, branch_backward, shortcut_backward = block.parts(x)
        dy = rng.standard_normal(out.shape)
        args = {
            "dy": dy,
            "out": out,
            "pre_backward": pre_backward,
            "branch_backward": branch_backward,
            "shortcut_backward": shortcut_backward,
            "shared": shared,
        }
        cases.append(
            Case(
                f"{image_words(x_shape)}, {x_shape[1]} -> {C_out} channels, stride {stride}, {words}",
                args,
                {"x": x},
                lambda p, block=block, dy=dy: float(np.sum(block.forward(p["x"]) * dy)),
            )
        )
    return cases


def _masked(dy, out):
    return relu_backward(dy, out)  # as if a ReLU followed the `+`: out is its input and output


PREACT_RESIDUAL_BACKWARD = Exercise(
    name="preact_residual_backward",
    title="the backward pass of a pre-activation block: nothing after the `+`",
    signature=(
        "preact_residual_backward(dy, out, pre_backward, branch_backward, shortcut_backward,\n"
        "                         shared) -> dx"
    ),
    task="""
A pre-activation block opens its branch with BN -> ReLU, pre(x) = relu(bn(x)), and puts
nothing after the `+`. With shared=False (an identity block) it computed
    out = branch(pre(x)) + x
and with shared=True (where the shortcut changes shape, and in a net's first block) pre(x)
is applied before the split and feeds both sides:
    h = pre(x),   out = branch(h) + shortcut(h).
dy has out's shape; out is the block's output (the same argument as in residual_backward:
decide whether you need it). pre_backward(d) returns dL/dx given d = dL/d pre(x);
branch_backward(d) and shortcut_backward(d) take the gradient at the output of the `+` and
return that side's gradient with respect to its input (for shared=False the shortcut is the
identity, shortcut_backward(d) is d). Return dx, of x's shape; do not modify dy.
""",
    outputs=(Output("dx", "x", gradient=True),),
    reference=preact_residual_backward,
    cases=_block_cases,
    mistakes=(
        Mistake(
            "a pre-activation block has no ReLU after the `+` (it moved into the branch, before "
            "the convolutions): dy reaches both sides unmasked; out is not needed",
            lambda dy, out, pre, branch, short, shared: preact_residual_backward(
                _masked(dy, out), out, pre, branch, short, shared
            ),
        ),
        Mistake(
            "the shortcut's gradient is missing: the `+` sends dy into both sides, and the "
            "shortcut's part (dy itself, for an identity shortcut) adds to the branch's",
            lambda dy, out, pre, branch, short, shared: pre(branch(dy)),
        ),
        Mistake(
            "with shared=True the BN-ReLU comes before the split and feeds the shortcut too, so "
            "the shortcut's gradient goes back through pre_backward as well",
            lambda dy, out, pre, branch, short, shared: pre(branch(dy)) + short(dy),
        ),
        Mistake(
            "with shared=False the shortcut carries x itself, not relu(bn(x)): only the "
            "branch's gradient goes back through pre_backward",
            lambda dy, out, pre, branch, short, shared: pre(branch(dy) + short(dy)),
        ),
        Mistake(
            "the branch starts with BN -> ReLU: its gradient must go back through pre_backward "
            "too before it reaches x",
            lambda dy, out, pre, branch, short, shared: branch(dy) + short(dy),
        ),
    ),
)


# ----------------------------------------------------------------------- the unrolled stack
def _stack_cases() -> list[Case]:
    rng = np.random.default_rng(31)
    cases = []
    for x_shape, blocks in (
        ((2, 3, 4, 4), 3),
        ((3, 2, 5, 3), 2),
        ((2, 2, 3, 3), 4),
        ((2, 3, 3, 4), 1),
    ):
        stack = [_PreActBlock(x_shape[1], x_shape[1], 1, False, rng) for _ in range(blocks)]
        x = rng.standard_normal(x_shape)
        h, branch_backwards = x, []
        for block in stack:
            out, pre_backward, branch_backward, _ = block.parts(h)
            branch_backwards.append(
                lambda d, pre=pre_backward, branch=branch_backward: pre(branch(d))
            )
            h = out
        d_top = rng.standard_normal(h.shape)

        def loss(p, stack=stack, d_top=d_top):
            h = p["x"]
            for block in stack:
                h = block.forward(h)
            return float(np.sum(h * d_top))

        words = f"{image_words(x_shape)}, {blocks} identity block{'s' * (blocks != 1)}"
        args = {"d_top": d_top, "branch_backwards": tuple(branch_backwards)}
        cases.append(Case(words, args, {"x": x}, loss))
    return cases


def _down(d_top, branch_backwards, order, step):
    g = d_top
    for branch_backward in order(branch_backwards):
        g = step(g, branch_backward)
    return g


UNROLLED_GRADIENT = Exercise(
    name="unrolled_gradient",
    title="the gradient through a stack of pre-activation blocks: dL/dx_l = dL/dx_L + ...",
    signature="unrolled_gradient(d_top, branch_backwards) -> dx",
    task="""
A stack of n pre-activation blocks with identity shortcuts computed
    x_{i+1} = x_i + F_i(x_i),   i = 0 .. n-1,
from its input x_0 to its output x_n. d_top = dL/dx_n. branch_backwards[i](d) returns
(dF_i/dx_i)^T d: what the branch F_i passes back to its input x_i when the gradient d
arrives at its output x_{i+1} (the branch's BN-ReLU included; the list runs from the first
block to the last). Return dL/dx_0, of x_0's shape; do not modify d_top.
""",
    outputs=(Output("dx", "x", gradient=True),),
    reference=unrolled_gradient,
    cases=_stack_cases,
    mistakes=(
        Mistake(
            "each branch receives the gradient at its own output x_{i+1}, which already "
            "contains the parts of the branches above it, not d_top: go down the stack one "
            "block at a time",
            lambda d, bbs: d + sum(bb(d) for bb in bbs),
        ),
        Mistake(
            "backward starts at the top: the last block (branch_backwards[-1]) gets d_top "
            "first, the first block last",
            lambda d, bbs: _down(d, bbs, list, lambda g, bb: g + bb(g)),
        ),
        Mistake(
            "each block's identity shortcut passes the gradient on unchanged and the branch's "
            "part adds to it; yours keeps the branch's part alone, as in a plain net",
            lambda d, bbs: _down(d, bbs, reversed, lambda g, bb: bb(g)),
        ),
        Mistake(
            "d_top itself is a term of dL/dx_0 (the identity path from the top): "
            "dL/dx_0 = d_top + the branches' parts",
            lambda d, bbs: _down(d, bbs, reversed, lambda g, bb: g + bb(g)) - d,
        ),
    ),
)

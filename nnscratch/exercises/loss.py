"""Exercise: softmax cross-entropy, its mean over the batch, and its backward with dloss."""

from __future__ import annotations

import numpy as np

from nnscratch.exercises.checking import Case, Exercise, Mistake, Output, run_pair
from nnscratch.functional.loss import (
    CrossEntropyCache,
    cross_entropy_backward,
    cross_entropy_forward,
)


def _cases() -> list[Case]:
    rng = np.random.default_rng(21)
    cases = []
    for words, N, K, offset, dloss in (
        ("batch 1, 3 classes, dloss 1", 1, 3, 0.0, 1.0),
        ("batch 4, 5 classes, dloss 0.7", 4, 5, 0.0, 0.7),
        ("batch 3, 2 classes, dloss -1.3", 3, 2, 0.0, -1.3),
        ("batch 4, 6 classes, logits near 1000 (exp overflows), dloss 2", 4, 6, 1000.0, 2.0),
    ):
        logits = rng.standard_normal((N, K)) * 2 + offset
        targets = rng.integers(0, K, N)

        def loss(p, targets=targets, dloss=dloss):
            return cross_entropy_forward(p["logits"], targets)[0] * dloss

        args = {"logits": logits, "targets": targets, "dloss": dloss}
        # near 1000, rounding in the loss swamps finite differences: the reference decides
        cases.append(Case(words, args, {"logits": logits}, loss if not offset else None))
    return cases


def _summed_forward(logits, targets):
    loss, cache = cross_entropy_forward(logits, targets)
    return loss * len(targets), cache


def _unstable_forward(logits, targets):
    """Softmax without subtracting the maximum: exp overflows for large logits."""
    e = np.exp(logits)
    probs = e / e.sum(axis=1, keepdims=True)
    N = len(targets)
    q = np.zeros_like(logits)
    q[np.arange(N), targets] = 1
    return -float(np.mean(np.log(probs[np.arange(N), targets]))), CrossEntropyCache(probs, q)


CROSS_ENTROPY = Exercise(
    name="cross_entropy",
    title="softmax cross-entropy: the mean loss over a batch and its gradient",
    signature=(
        "cross_entropy_forward(logits, targets) -> (loss, cache)\n"
        "cross_entropy_backward(dloss, cache) -> dlogits"
    ),
    task="""
logits is (N, K) float64, targets (N,) integer class indices in [0, K). The forward returns
    loss = -(1/N) * sum over n of log softmax(logits[n])[targets[n]]
as a Python float, and a cache of your choice (the check passes it only to your backward).
Compute log softmax stably: subtract each row's maximum before exp (the check has logits
near 1000). The backward takes dloss, the gradient of the final objective with respect to
loss (a number, not always 1), and returns dlogits (N, K).
""",
    outputs=(Output("loss"), Output("dlogits", "logits", gradient=True)),
    reference=(cross_entropy_forward, cross_entropy_backward),
    cases=_cases,
    kind="pair",
    run=run_pair(("logits", "targets"), "dloss", ("dlogits",)),
    mistakes=(
        Mistake(
            "the loss is the mean over the batch, not the sum: divide by N",
            (_summed_forward, cross_entropy_backward),
        ),
        Mistake(
            "subtract each row's maximum before exp: exp(1000) overflows to inf and the "
            "softmax becomes nan; softmax(z) = softmax(z - max(z))",
            (_unstable_forward, cross_entropy_backward),
        ),
        Mistake(
            "dlogits is N times too large: the loss averages over the batch, so its gradient "
            "has the 1/N too",
            (cross_entropy_forward, lambda dloss, c: (c.probs - c.q) * dloss),
        ),
        Mistake(
            "multiply by the upstream gradient dloss: the loss may be scaled or sit inside a "
            "larger objective",
            (cross_entropy_forward, lambda dloss, c: (c.probs - c.q) / len(c.q)),
        ),
        Mistake(
            "the sign is flipped: raising the target's logit lowers the loss, so dlogits is "
            "negative there when dloss > 0",
            (cross_entropy_forward, lambda dloss, c: (c.q - c.probs) * dloss / len(c.q)),
        ),
    ),
)

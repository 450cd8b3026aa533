"""Exercise: one step of SGD with momentum and weight decay, with PyTorch's convention.

g = grad + weight_decay * p
buf = momentum * buf + g
p = p - lr * buf
"""

from __future__ import annotations

import numpy as np

from nnscratch.exercises.checking import (
    Case,
    Exercise,
    Mistake,
    Output,
    Refusal,
    conform,
    kind_of,
    read_only,
)
from nnscratch.nn.parameter import Parameter
from nnscratch.optim.sgd import SGD


def sgd_momentum_step(p, grad, buf, lr: float, momentum: float, weight_decay: float) -> tuple:
    """(new p, new buf) after one step of the library's SGD, started from the buffer ``buf``."""
    param = Parameter(p.copy())
    param.grad = grad.copy()
    optimizer = SGD([param], lr=lr, momentum=momentum, weight_decay=weight_decay)
    if momentum == 0:  # PyTorch keeps no buffer then; the formula's buf is the gradient
        optimizer.step()
        return param.data, grad + weight_decay * p
    optimizer.state[param] = {"momentum_buffer": buf.copy()}
    optimizer.step()
    return param.data, optimizer.state[param]["momentum_buffer"]


def _run_steps(step, args) -> tuple[np.ndarray, np.ndarray]:
    """Run ``step`` over the case's gradients and learning rates, feeding back (p, buf);
    the outputs are p and buf after every step, stacked: index (step, ...)."""
    p, buf = args["p"], args["buf"]
    ps, bufs = [], []
    for t, (grad, lr) in enumerate(zip(args["grads"], args["lrs"])):
        result = step(p, grad, buf, lr, args["momentum"], args["weight_decay"])
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise Refusal(f"the step should return a pair (p, buf), but it gave {kind_of(result)}")
        # the next step gets them read-only, as every input
        p = read_only(conform(f"p after step {t}", result[0], args["p"], "the parameter"))
        buf = read_only(conform(f"buf after step {t}", result[1], args["p"], "the parameter"))
        ps.append(p)
        bufs.append(buf)
    return np.stack(ps), np.stack(bufs)


def _cases() -> list[Case]:
    rng = np.random.default_rng(23)
    cases = []
    for shape, momentum, weight_decay, lrs in (
        ((3, 4), 0.9, 0.0, (0.1, 0.1, 0.1, 0.1)),
        ((5,), 0.9, 0.01, (0.1, 0.1, 0.05, 0.01)),  # a schedule: lr changes between steps
        ((2, 1, 3), 0.5, 0.1, (0.2, 0.02, 0.2)),
        ((4,), 0.0, 0.05, (0.1, 0.1)),  # plain SGD: buf = grad + weight_decay * p
    ):
        grads = rng.standard_normal((len(lrs), *shape))
        args = {
            "p": rng.standard_normal(shape),
            "buf": np.zeros(shape),
            "grads": grads,
            "lrs": lrs,
            "momentum": momentum,
            "weight_decay": weight_decay,
        }
        words = (
            f"{len(lrs)} steps on p of shape {shape}, momentum {momentum}, weight decay "
            f"{weight_decay}, lr {', '.join(map(str, lrs))} (index: (step, ...) from 0)"
        )
        cases.append(Case(words, args))
    return cases


def _buffer_after_update(p, grad, buf, lr, momentum, weight_decay):
    g = grad + weight_decay * p
    return p - lr * buf, momentum * buf + g


def _velocity_in_parameter_units(p, grad, buf, lr, momentum, weight_decay):
    v = momentum * buf - lr * (grad + weight_decay * p)
    return p + v, v


def _dampened(p, grad, buf, lr, momentum, weight_decay):
    new_buf = momentum * buf + (1 - momentum) * (grad + weight_decay * p)
    return p - lr * new_buf, new_buf


def _decay_after_momentum(p, grad, buf, lr, momentum, weight_decay):
    new_buf = momentum * buf + grad
    return p - lr * (new_buf + weight_decay * p), new_buf


SGD_MOMENTUM_STEP = Exercise(
    name="sgd_momentum_step",
    title="one step of SGD with momentum and weight decay, as PyTorch takes it",
    signature="sgd_momentum_step(p, grad, buf, lr, momentum, weight_decay) -> (p, buf)",
    task="""
p, grad and buf are arrays of one shape; lr, momentum and weight_decay are floats. PyTorch's
rule (dampening 0, no Nesterov):
    g = grad + weight_decay * p          (L2 weight decay joins the gradient first)
    buf = momentum * buf + g             (buf is in gradient units)
    p = p - lr * buf
Return the new p and the new buf as new arrays; do not modify the inputs. buf starts at
zeros, which gives PyTorch's first step, buf = g. The check runs several steps, feeding your
(p, buf) back in, with a learning rate that may change between steps.
""",
    outputs=(Output("p"), Output("buf")),
    reference=sgd_momentum_step,
    cases=_cases,
    run=_run_steps,
    mistakes=(
        Mistake(
            "update buf first, then step p with the new buf; yours stepped with the old one",
            _buffer_after_update,
        ),
        Mistake(
            "your buffer is a velocity in parameter units (v = momentum * v - lr * g; p += v, "
            "as in Sutskever et al. or TensorFlow); PyTorch's buf is in gradient units and lr "
            "multiplies it afterwards, which differs when lr changes",
            _velocity_in_parameter_units,
        ),
        Mistake(
            "no dampening: PyTorch's buf adds g itself, not (1 - momentum) * g",
            _dampened,
        ),
        Mistake(
            "weight decay joins the gradient before the momentum; yours adds it to the step "
            "after the buffer",
            _decay_after_momentum,
        ),
    ),
)

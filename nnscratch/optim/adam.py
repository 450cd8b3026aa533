"""Adam (Kingma & Ba 2015) with L2 weight decay, and AdamW (Loshchilov & Hutter 2019)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from nnscratch.nn.parameter import Parameter
from nnscratch.optim.optimizer import Optimizer, _check_number


class Adam(Optimizer):
    """Adam: a step along the bias-corrected first moment over the root of the second.

    For step t with gradient g_t (weight decay λ added to the gradient as an L2 term):
        g_t ← g_t + λ·p_{t-1}
        m_t = β1·m_{t-1} + (1-β1)·g_t,    v_t = β2·v_{t-1} + (1-β2)·g_t²
        p_t = p_{t-1} - lr·m̂_t / (√v̂_t + ε),  m̂_t = m_t/(1-β1^t),  v̂_t = v_t/(1-β2^t)

    State per parameter: ``step`` (int), ``exp_avg`` (m), ``exp_avg_sq`` (v).
    """

    state_keys = ("step", "exp_avg", "exp_avg_sq")
    #: AdamW sets this: weight decay shrinks the parameter instead of entering the gradient.
    decoupled_weight_decay = False

    def __init__(
        self,
        params: Iterable[Parameter] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
    ):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults)

    def _validate_group(self, group: dict[str, Any]) -> None:
        name = type(self).__name__
        group["lr"] = _check_number(name, "lr", group["lr"], 0.0)
        group["eps"] = _check_number(name, "eps", group["eps"], 0.0)
        group["weight_decay"] = _check_number(name, "weight_decay", group["weight_decay"], 0.0)
        try:
            beta1, beta2 = group["betas"]
        except (TypeError, ValueError):
            raise ValueError(
                f"{name}: betas must be a pair (beta1, beta2), got {group['betas']!r}"
            ) from None
        group["betas"] = (
            _check_number(name, "betas[0]", beta1, 0.0, 1.0, high_open=True),
            _check_number(name, "betas[1]", beta2, 0.0, 1.0, high_open=True),
        )

    def step(self) -> None:
        """Apply one Adam (or AdamW) update to every trainable parameter, in place."""
        for group in self.param_groups:
            lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
            beta1, beta2 = group["betas"]
            for p in self._trainable(group):
                state = self.state.get(p)
                if state is None:
                    state = self.state[p] = {
                        "step": 0,
                        "exp_avg": np.zeros_like(p.data),
                        "exp_avg_sq": np.zeros_like(p.data),
                    }
                state["step"] += 1
                t = state["step"]

                g = p.grad
                if wd != 0:
                    if self.decoupled_weight_decay:
                        p.data *= 1.0 - lr * wd  # p ← p - lr·λ·p, before the Adam step
                    else:
                        g = g + wd * p.data  # a new array: p.grad is never modified

                m, v = state["exp_avg"], state["exp_avg_sq"]
                m *= beta1
                m += (1.0 - beta1) * g
                v *= beta2
                v += (1.0 - beta2) * (g * g)

                # lr·m̂/(√v̂ + ε) with the two bias corrections folded into scalars.
                step_size = lr / (1.0 - beta1**t)
                denom = np.sqrt(v)
                denom /= math.sqrt(1.0 - beta2**t)
                denom += eps
                p.data -= step_size * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay: the parameter shrinks by lr·λ before the Adam step.

    For step t with gradient g_t (no λ in the gradient, so decay is not rescaled by √v̂):
        p' = p_{t-1} - lr·λ·p_{t-1}
        m_t, v_t, m̂_t, v̂_t as in Adam, from g_t
        p_t = p' - lr·m̂_t / (√v̂_t + ε)
    """

    decoupled_weight_decay = True

    def __init__(
        self,
        params: Iterable[Parameter] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

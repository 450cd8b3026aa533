"""Stochastic gradient descent with momentum, Nesterov momentum and L2 weight decay."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from nnscratch.nn.parameter import Parameter
from nnscratch.optim.optimizer import Optimizer, _check_number


class SGD(Optimizer):
    """Stochastic gradient descent, with PyTorch's momentum convention.

    For step t with gradient g_t (weight decay λ, momentum μ, dampening τ):
        g_t ← g_t + λ·p_{t-1}
        b_1 = g_1,   b_t = μ·b_{t-1} + (1-τ)·g_t         (only if μ ≠ 0)
        d_t = g_t + μ·b_t if nesterov else b_t
        p_t = p_{t-1} - lr·d_t

    The buffer is velocity in gradient units (lr is applied after), unlike Sutskever
    et al. 2013; the two agree for a constant lr and differ when the lr changes.
    State per parameter: ``momentum_buffer`` (only when μ ≠ 0).
    """

    state_keys = ("momentum_buffer",)

    def __init__(
        self,
        params: Iterable[Parameter] | Iterable[dict[str, Any]],
        lr: float,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
    ):
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
        )
        super().__init__(params, defaults)

    def _validate_group(self, group: dict[str, Any]) -> None:
        group["lr"] = _check_number("SGD", "lr", group["lr"], 0.0)
        group["momentum"] = _check_number("SGD", "momentum", group["momentum"], 0.0)
        group["dampening"] = _check_number("SGD", "dampening", group["dampening"], 0.0, 1.0)
        group["weight_decay"] = _check_number("SGD", "weight_decay", group["weight_decay"], 0.0)
        group["nesterov"] = bool(group["nesterov"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                "SGD: nesterov=True requires momentum > 0 and dampening = 0, got "
                f"momentum={group['momentum']}, dampening={group['dampening']}"
            )

    def step(self) -> None:
        """Apply one SGD update to every trainable parameter, in place."""
        for group in self.param_groups:
            lr, mu = group["lr"], group["momentum"]
            tau, wd = group["dampening"], group["weight_decay"]
            for p in self._trainable(group):
                d = p.grad
                if wd != 0:
                    d = d + wd * p.data  # a new array: p.grad is never modified
                if mu != 0:
                    state = self.state.setdefault(p, {})
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = np.array(d, copy=True)
                    else:
                        buf *= mu
                        buf += (1.0 - tau) * d
                    d = d + mu * buf if group["nesterov"] else buf
                p.data -= lr * d

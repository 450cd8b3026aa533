"""Learning-rate schedules that write ``group["lr"]`` of an optimizer at every ``step()``.

Every schedule is a closed-form function of its step counter ``last_epoch`` (0 right
after construction, +1 per ``step()``), so the same counter gives the same lr however
it was reached, and a state dict is just the counter and the constants. Call ``step()``
once per epoch or once per iteration: the schedule does not know which, only how many.
As in PyTorch, construction sets the lr for step 0, and each schedule's base lr is the
group's ``"initial_lr"`` (set from ``"lr"`` by the first schedule attached).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from typing import Any

from nnscratch.optim.optimizer import Optimizer, _check_number, _to_python


class LRScheduler:
    """Base class: subclasses define ``_lr_at(epoch)``, the lr of every group at a step."""

    #: Constructor constants saved in the state dict (besides the counter and base lrs).
    hyper_names: tuple[str, ...] = ()

    def __init__(self, optimizer: Optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"{type(self).__name__}: expected an Optimizer, got {type(optimizer).__name__}"
            )
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [float(group["initial_lr"]) for group in optimizer.param_groups]
        self.last_epoch = 0
        self._last_lr = self._lr_at(0)
        self._apply(self._last_lr)

    def _lr_at(self, epoch: int) -> list[float]:
        raise NotImplementedError

    def step(self) -> None:
        """Advance the counter by one and write the new lr into every param group."""
        lrs = self._lr_at(self.last_epoch + 1)  # may raise; nothing has changed yet
        self.last_epoch += 1
        self._last_lr = lrs
        self._apply(lrs)

    def get_last_lr(self) -> list[float]:
        """The lr of every param group as set by the latest ``step()`` (or construction)."""
        return list(self._last_lr)

    def _apply(self, lrs: list[float]) -> None:
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr

    def state_dict(self) -> dict[str, Any]:
        """Return the class name, counter, base lrs, last lrs and constants (JSON-friendly)."""
        state = {
            "name": type(self).__name__,
            "last_epoch": self.last_epoch,
            "base_lrs": list(self.base_lrs),
            "last_lr": list(self._last_lr),
        }
        for key in self.hyper_names:
            value = getattr(self, key)
            state[key] = list(value) if isinstance(value, (list, tuple)) else value
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a state saved by :meth:`state_dict` and write its lr into the groups."""
        name = type(self).__name__
        saved_name = state_dict.get("name", name)
        if saved_name != name:
            raise ValueError(f"{name}: the state dict was saved by a {saved_name}")
        missing = [
            k
            for k in ("last_epoch", "base_lrs", "last_lr", *self.hyper_names)
            if k not in state_dict
        ]
        if missing:
            raise ValueError(f"{name}: the state dict lacks {missing}")
        n_groups = len(self.optimizer.param_groups)
        for key in ("base_lrs", "last_lr"):
            if len(state_dict[key]) != n_groups:
                raise ValueError(
                    f"{name}: the state dict has {len(state_dict[key])} {key}, "
                    f"the optimizer has {n_groups} param groups"
                )
        for key in self.hyper_names:
            value = _to_python(state_dict[key])
            setattr(self, key, list(value) if isinstance(value, tuple) else value)
        self.last_epoch = int(state_dict["last_epoch"])
        self.base_lrs = [float(lr) for lr in state_dict["base_lrs"]]
        self._last_lr = [float(lr) for lr in state_dict["last_lr"]]
        self._apply(self._last_lr)

    def __repr__(self) -> str:
        hyper = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.hyper_names)
        return f"{type(self).__name__}({hyper}, last_epoch={self.last_epoch})"


def _check_positive_int(owner: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")
    return value


class StepLR(LRScheduler):
    """Multiply the lr by ``gamma`` every ``step_size`` steps.

    lr_t = base_lr · γ^⌊t / step_size⌋
    """

    hyper_names = ("step_size", "gamma")

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1):
        self.step_size = _check_positive_int("StepLR", "step_size", step_size)
        self.gamma = _check_number("StepLR", "gamma", gamma, 0.0)
        super().__init__(optimizer)

    def _lr_at(self, epoch: int) -> list[float]:
        return [base * self.gamma ** (epoch // self.step_size) for base in self.base_lrs]


class MultiStepLR(LRScheduler):
    """Multiply the lr by ``gamma`` at each milestone step (a repeated milestone counts twice).

    lr_t = base_lr · γ^(number of milestones ≤ t)
    """

    hyper_names = ("milestones", "gamma")

    def __init__(self, optimizer: Optimizer, milestones: Sequence[int], gamma: float = 0.1):
        milestones = list(milestones)
        for m in milestones:
            if isinstance(m, bool) or not isinstance(m, int) or m < 0:
                raise ValueError(
                    f"MultiStepLR: milestones must be non-negative integers, got {milestones!r}"
                )
        self.milestones = sorted(milestones)
        self.gamma = _check_number("MultiStepLR", "gamma", gamma, 0.0)
        super().__init__(optimizer)

    def _lr_at(self, epoch: int) -> list[float]:
        k = bisect_right(self.milestones, epoch)
        return [base * self.gamma**k for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """Cosine decay from the base lr to ``eta_min`` over ``T_max`` steps (SGDR without restarts).

        lr_t = η_min + (base_lr - η_min) · (1 + cos(π·t / T_max)) / 2

    Past ``T_max`` the same formula rises again, as in PyTorch; size ``T_max`` to the run.
    """

    hyper_names = ("T_max", "eta_min")

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0):
        self.T_max = _check_positive_int("CosineAnnealingLR", "T_max", T_max)
        self.eta_min = _check_number("CosineAnnealingLR", "eta_min", eta_min, 0.0)
        super().__init__(optimizer)

    def _lr_at(self, epoch: int) -> list[float]:
        c = (1.0 + math.cos(math.pi * epoch / self.T_max)) / 2.0
        return [self.eta_min + (base - self.eta_min) * c for base in self.base_lrs]


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin 2017): anneal up to ``max_lr``, then far below the start.

    With lr_0 = max_lr/div_factor, lr_min = lr_0/final_div_factor, peak step
    t_p = pct_start·total_steps - 1 and last step t_e = total_steps - 1:
        lr_t = anneal(lr_0, max_lr, t/t_p)                  for t ≤ t_p
        lr_t = anneal(max_lr, lr_min, (t-t_p)/(t_e-t_p))    after,
    with anneal(a, b, x) = b + (a-b)·(1+cos πx)/2 ("cos") or a + (b-a)·x ("linear").

    Meant to be stepped once per batch; stepping past ``total_steps`` raises, as in
    PyTorch. The group's lr at construction is ignored. Unlike PyTorch's default
    (``cycle_momentum=True``), momentum is not cycled.
    """

    hyper_names = (
        "max_lrs",
        "total_steps",
        "pct_start",
        "div_factor",
        "final_div_factor",
        "anneal_strategy",
    )

    def __init__(
        self,
        optimizer: Optimizer,
        max_lr: float | Sequence[float],
        total_steps: int,
        pct_start: float = 0.3,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        anneal_strategy: str = "cos",
    ):
        n_groups = len(optimizer.param_groups)
        if isinstance(max_lr, (list, tuple)):
            if len(max_lr) != n_groups:
                raise ValueError(
                    f"OneCycleLR: max_lr has {len(max_lr)} values, "
                    f"the optimizer has {n_groups} param groups"
                )
            max_lrs = list(max_lr)
        else:
            max_lrs = [max_lr] * n_groups
        self.max_lrs = [_check_number("OneCycleLR", "max_lr", lr, 0.0) for lr in max_lrs]
        self.total_steps = _check_positive_int("OneCycleLR", "total_steps", total_steps)
        self.pct_start = _check_number("OneCycleLR", "pct_start", pct_start, 0.0, 1.0, True)
        if self.pct_start * self.total_steps <= 1:
            raise ValueError(
                "OneCycleLR: pct_start * total_steps must exceed 1 so that the warm-up phase "
                f"spans at least one step, got pct_start={pct_start}, total_steps={total_steps}"
            )
        self.div_factor = _check_number("OneCycleLR", "div_factor", div_factor, 0.0)
        self.final_div_factor = _check_number(
            "OneCycleLR", "final_div_factor", final_div_factor, 0.0
        )
        if self.div_factor == 0 or self.final_div_factor == 0:
            raise ValueError("OneCycleLR: div_factor and final_div_factor must be positive")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(
                f"OneCycleLR: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}"
            )
        self.anneal_strategy = anneal_strategy
        for group, lr in zip(optimizer.param_groups, self.max_lrs):
            group["initial_lr"] = lr / self.div_factor  # the base lr is defined by max_lr
        super().__init__(optimizer)

    @property
    def peak_step(self) -> float:
        """The step t_p at which the lr reaches ``max_lr`` (a float, as in PyTorch)."""
        return self.pct_start * self.total_steps - 1.0

    def _anneal(self, start: float, end: float, x: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) * (1.0 + math.cos(math.pi * x)) / 2.0
        return start + (end - start) * x

    def _lr_at(self, epoch: int) -> list[float]:
        if epoch > self.total_steps:
            raise ValueError(
                f"OneCycleLR: tried to step {epoch} times, but total_steps is "
                f"{self.total_steps}; size total_steps to the number of step() calls"
            )
        t_p, t_e = self.peak_step, self.total_steps - 1.0
        lrs = []
        for max_lr in self.max_lrs:
            lr_0 = max_lr / self.div_factor
            lr_min = lr_0 / self.final_div_factor
            if epoch <= t_p:
                lrs.append(self._anneal(lr_0, max_lr, epoch / t_p))
            else:
                lrs.append(self._anneal(max_lr, lr_min, (epoch - t_p) / (t_e - t_p)))
        return lrs


class LinearWarmup(LRScheduler):
    """Ramp the lr linearly from ``start_factor``·base_lr to base_lr, then hand over to ``after``.

        lr_t = base_lr · (s + (1 - s)·t / warmup_steps)     for t < warmup_steps
        lr_t = after's lr at step t - warmup_steps           for t ≥ warmup_steps
        (or base_lr when there is no ``after``)

    Build ``after`` on the same optimizer first, with its length counted from the end of
    the warm-up, e.g. ``LinearWarmup(opt, 5, after=CosineAnnealingLR(opt, T_max=95))``,
    and step only the warm-up: it advances ``after`` itself.
    This equals PyTorch's ``SequentialLR([LinearLR(opt, s, 1.0, warmup_steps), after],
    milestones=[warmup_steps])``; ``start_factor`` defaults to LinearLR's 1/3.
    """

    hyper_names = ("warmup_steps", "start_factor")

    def __init__(
        self,
        optimizer: Optimizer,
        warmup_steps: int,
        after: LRScheduler | None = None,
        start_factor: float = 1.0 / 3.0,
    ):
        self.warmup_steps = _check_positive_int("LinearWarmup", "warmup_steps", warmup_steps)
        self.start_factor = _check_number("LinearWarmup", "start_factor", start_factor, 0.0, 1.0)
        if after is not None:
            if not isinstance(after, LRScheduler):
                raise TypeError(
                    f"LinearWarmup: after must be a scheduler, got {type(after).__name__}"
                )
            if after.optimizer is not optimizer:
                raise ValueError("LinearWarmup: after must schedule the same optimizer")
        self.after = after
        super().__init__(optimizer)

    def _lr_at(self, epoch: int) -> list[float]:
        if epoch >= self.warmup_steps:
            if self.after is None:
                return list(self.base_lrs)
            return self.after._lr_at(epoch - self.warmup_steps)
        s = self.start_factor
        factor = s + (1.0 - s) * epoch / self.warmup_steps
        return [base * factor for base in self.base_lrs]

    def step(self) -> None:
        """Advance one step; from the end of the warm-up on, ``after`` advances with it."""
        super().step()
        if self.after is not None and self.last_epoch >= self.warmup_steps:
            self.after.last_epoch = self.last_epoch - self.warmup_steps
            self.after._last_lr = list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """The warm-up's state, with the state of ``after`` nested under ``"after"``."""
        state = super().state_dict()
        state["after"] = None if self.after is None else self.after.state_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the warm-up and, nested, the ``after`` schedule."""
        saved_after = state_dict.get("after")
        if (saved_after is None) != (self.after is None):
            raise ValueError(
                "LinearWarmup: the state dict and this scheduler disagree on whether "
                "an 'after' schedule follows the warm-up"
            )
        if self.after is not None:
            self.after.load_state_dict(saved_after)
        super().load_state_dict(state_dict)

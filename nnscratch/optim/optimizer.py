"""The optimizer base class: parameter groups, ``zero_grad``, ``step``, state dicts.

An optimizer owns a list of *parameter groups*, each a dict with a ``"params"`` list and
its own hyper-parameters (``lr``, ``weight_decay``, ...), exactly as in PyTorch, plus a
per-parameter ``state`` dict (momentum buffers, Adam moments) filled lazily by ``step``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from nnscratch.nn.parameter import Parameter


class Optimizer:
    """Base class: holds parameter groups and per-parameter state; subclasses define ``step``.

    ``params`` is an iterable of :class:`Parameter` or a list of dicts
    ``{"params": [...], "lr": ..., ...}``; keys missing from a group are filled from
    ``defaults``. Frozen parameters (``requires_grad=False``) stay in their group but
    ``step`` skips them entirely: no update, no decay, no state.
    """

    #: Keys of the per-parameter state a subclass keeps (checked by ``load_state_dict``).
    state_keys: tuple[str, ...] = ()

    def __init__(self, params: Iterable[Parameter] | Iterable[dict[str, Any]], defaults: dict):
        self.defaults = dict(defaults)
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[Parameter, dict[str, Any]] = {}

        if isinstance(params, (Parameter, dict)):
            raise TypeError(
                f"{type(self).__name__}: params must be an iterable of Parameters or of "
                f"param-group dicts, got a single {type(params).__name__}"
            )
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)
        if not any(group["params"] for group in self.param_groups):
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")

    # ----------------------------------------------------------------- groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group (a dict with ``"params"``); missing hyper-parameters come from defaults."""
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{name}: a param group must be a dict, got {type(param_group)}")
        if "params" not in param_group:
            raise ValueError(f"{name}: a param group needs a 'params' entry")
        params = param_group["params"]
        params = [params] if isinstance(params, Parameter) else list(params)
        for p in params:
            if not isinstance(p, Parameter):
                raise TypeError(f"{name}: expected Parameter objects, got {type(p).__name__}")
        if len({id(p) for p in params}) != len(params):
            raise ValueError(f"{name}: a parameter appears twice in one param group")
        seen = {id(p) for group in self.param_groups for p in group["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError(f"{name}: some parameters appear in more than one param group")

        group = {**self.defaults, **param_group, "params": params}
        self._validate_group(group)
        self.param_groups.append(group)

    def _validate_group(self, group: dict[str, Any]) -> None:
        """Check a group's hyper-parameters (raise ``ValueError``) and normalise their types."""

    # ------------------------------------------------------------------- step
    def parameters(self) -> Iterator[Parameter]:
        """Yield every parameter of every group, in position order."""
        for group in self.param_groups:
            yield from group["params"]

    def zero_grad(self) -> None:
        """Reset the gradient of every parameter to zero (in place)."""
        for p in self.parameters():
            p.zero_grad()

    def step(self) -> None:
        """Update every trainable parameter in place from its ``grad``."""
        raise NotImplementedError

    def _trainable(self, group: dict[str, Any]) -> Iterator[Parameter]:
        """Yield the group's non-frozen parameters, checking that each grad matches its data."""
        for p in group["params"]:
            if not p.requires_grad:
                continue
            if p.grad.shape != p.data.shape or p.grad.dtype != p.data.dtype:
                raise ValueError(
                    f"{type(self).__name__}: a parameter's grad has shape {p.grad.shape} and "
                    f"dtype {p.grad.dtype}, expected {p.data.shape} and {p.data.dtype}"
                )
            yield p

    # ------------------------------------------------------------ state dicts
    def state_dict(self) -> dict[str, Any]:
        """Return ``{"state": {index: {...}}, "param_groups": [{..., "params": [index, ...]}]}``.

        Parameters are identified by their position across all groups (0, 1, 2, ...).
        Arrays are copies and hyper-parameters plain Python numbers, so the result can be
        kept while training continues and flattened into ``.npz``/JSON.
        """
        state: dict[int, dict[str, Any]] = {}
        groups = []
        index = 0
        for group in self.param_groups:
            indices = []
            for p in group["params"]:
                if p in self.state:
                    state[index] = {k: _copy_value(v) for k, v in self.state[p].items()}
                indices.append(index)
                index += 1
            hyper = {k: _copy_value(v) for k, v in group.items() if k != "params"}
            groups.append({**hyper, "params": indices})
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyper-parameters and per-parameter state saved by :meth:`state_dict`.

        The saved groups must match this optimizer's in number and size, and every state
        array must have its parameter's shape; arrays are cast to the parameter's dtype.
        Everything is checked before anything changes.
        """
        name = type(self).__name__
        if "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError(f"{name}: a state dict needs 'state' and 'param_groups' entries")
        saved_groups = list(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{name}: the state dict has {len(saved_groups)} param groups, "
                f"this optimizer has {len(self.param_groups)}"
            )
        new_groups = []
        for g, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            n_saved = len(saved["params"])
            if n_saved != len(group["params"]):
                raise ValueError(
                    f"{name}: param group {g} has {n_saved} parameters in the state dict, "
                    f"{len(group['params'])} in this optimizer"
                )
            hyper = {k: _to_python(v) for k, v in saved.items() if k != "params"}
            new_group = {**group, **hyper}
            self._validate_group(new_group)
            new_groups.append(new_group)

        params = list(self.parameters())
        new_state: dict[Parameter, dict[str, Any]] = {}
        for key, saved in state_dict["state"].items():
            index = int(key)
            if not 0 <= index < len(params):
                raise ValueError(
                    f"{name}: state for parameter {index}, but there are {len(params)} parameters"
                )
            p = params[index]
            if set(saved) != set(self.state_keys):
                raise ValueError(
                    f"{name}: state of parameter {index} has keys {sorted(saved)}, "
                    f"expected {sorted(self.state_keys)}"
                )
            entry = {}
            for k, v in saved.items():
                if k == "step":
                    entry[k] = int(np.asarray(v))
                    continue
                v = np.asarray(v)
                if v.shape != p.data.shape:
                    raise ValueError(
                        f"{name}: state '{k}' of parameter {index} has shape {v.shape}, "
                        f"the parameter has shape {p.data.shape}"
                    )
                entry[k] = np.array(v, dtype=p.data.dtype, copy=True)
            new_state[p] = entry

        self.param_groups = new_groups
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}("]
        for i, group in enumerate(self.param_groups):
            hyper = ", ".join(f"{k}={v}" for k, v in group.items() if k != "params")
            lines.append(f"  group {i}: {len(group['params'])} params, {hyper}")
        return "\n".join([*lines, ")"])


def _copy_value(value: Any) -> Any:
    """A copy of an array, a tuple of numbers, or a number, safe to keep while training goes on."""
    if isinstance(value, np.ndarray):
        return value.copy()
    return _to_python(value)


def _to_python(value: Any) -> Any:
    """Turn NumPy scalars into Python numbers and lists/1-d arrays into tuples (``betas``).

    A NumPy ``float64`` scalar would promote a ``float32`` update to ``float64`` (NEP 50),
    so hyper-parameters read back from ``.npz`` or JSON are made plain Python numbers.
    """
    if isinstance(value, np.ndarray):
        return value.item() if value.ndim == 0 else tuple(_to_python(v) for v in value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return tuple(_to_python(v) for v in value)
    return value


def _check_number(
    owner: str,
    name: str,
    value: Any,
    low: float,
    high: float | None = None,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a float, or raise a ValueError naming the argument and the range."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{owner}: {name} must be a number, got {value!r}") from None
    if high is None:
        ok, expected = x >= low, f">= {low}"
    elif high_open:
        ok, expected = low <= x < high, f"in [{low}, {high})"
    else:
        ok, expected = low <= x <= high, f"in [{low}, {high}]"
    if not ok:
        raise ValueError(f"{owner}: {name} must be {expected}, got {value!r}")
    return x


def weight_decay_groups(
    named_parameters: Iterable[tuple[str, Parameter]], weight_decay: float
) -> list[dict[str, Any]]:
    """Split parameters into a decayed group and a non-decayed group, for any optimizer.

    Conv and linear weights (2-d or more) get ``weight_decay``; biases and batch-norm
    ``weight``/``bias`` (1-d) get ``weight_decay=0``, as is usual for ResNets
    (Goyal et al. 2017, "Accurate, Large Minibatch SGD", §5.1). Returns
    ``[{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]``.
    A parameter shared under two names is listed once.
    """
    weight_decay = _check_number("weight_decay_groups", "weight_decay", weight_decay, 0.0)
    decay: list[Parameter] = []
    no_decay: list[Parameter] = []
    seen: set[int] = set()
    for item in named_parameters:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], Parameter)):
            raise TypeError(
                "weight_decay_groups: expected (name, Parameter) pairs as from "
                f"model.named_parameters(), got {type(item).__name__}"
            )
        p = item[1]
        if id(p) in seen:
            continue
        seen.add(id(p))
        (decay if p.data.ndim >= 2 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]

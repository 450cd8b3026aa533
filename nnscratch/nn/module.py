"""The base class of every layer, block and model.

A module owns its :class:`Parameter` objects, its buffers (state that is saved but
not trained, such as batch norm's running statistics) and its sub-modules, all found
by attribute assignment as in PyTorch. ``y = module(x)`` runs ``forward`` and keeps
what ``backward`` needs; ``dx = module.backward(dy)`` consumes it, adds parameter
gradients into ``param.grad`` and returns the input gradient.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from nnscratch.functional._checks import FLOAT_DTYPES, InputDtypeError, InputShapeError
from nnscratch.nn.grad_mode import is_grad_enabled
from nnscratch.nn.parameter import Parameter


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict(strict=False)`` skipped."""

    missing_keys: list[str]
    unexpected_keys: list[str]


# While trace_calls() is active: (module, output shape) for every module call, in order.
_calls: list[tuple[Module, tuple[int, ...]]] | None = None


@contextlib.contextmanager
def trace_calls() -> Iterator[list[tuple[Module, tuple[int, ...]]]]:
    """Record ``(module, output_shape)`` for each module called inside the block."""
    global _calls
    previous, _calls = _calls, []
    try:
        yield _calls
    finally:
        _calls = previous


def tracing_calls() -> bool:
    """True inside :func:`trace_calls`, where every module must be called on its own."""
    return _calls is not None


@contextlib.contextmanager
def errors_named_after(module: Module) -> Iterator[None]:
    """Prefix a bad-input error from inside the block with ``module``'s repr (once: the
    innermost module that saw it names it)."""
    try:
        yield
    except (InputShapeError, InputDtypeError) as error:
        if getattr(error, "layer_named", False):
            raise
        labelled = type(error)(f"{module!r}: {error}")
        labelled.layer_named = True
        raise labelled from None


# Inside retain_caches(): pop_cache() hands out the cache and keeps it.
_retaining = False


@contextlib.contextmanager
def retain_caches() -> Iterator[None]:
    """Let many backward passes go back through one forward: caches are kept, not popped.

    No backward writes into a cached array, so each repeated pass computes the same
    thing; parameter gradients accumulate on every pass. After the block, the caches
    left behind allow one more backward, as after any forward.
    """
    global _retaining
    previous, _retaining = _retaining, True
    try:
        yield
    finally:
        _retaining = previous


# Older checkpoints (and torchvision's own files) may lack this buffer; it is optional.
_OPTIONAL_KEY_SUFFIX = "num_batches_tracked"


class Module:
    """Base class: parameters, buffers and sub-modules registered by assignment."""

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_cache", None)

    # ----------------------------------------------------------------- registration
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}.__init__ must call super().__init__()")
        for registry in (self._parameters, self._buffers, self._modules):
            if name in registry and not isinstance(value, (Parameter, Module)):
                if registry is self._buffers:  # keep buffers as arrays: `count += 1`
                    registry[name] = np.asarray(value, dtype=registry[name].dtype)
                    return
                del registry[name]
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        for registry in ("_parameters", "_buffers", "_modules"):
            values = self.__dict__.get(registry, {})
            if name in values:
                return values[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def register_buffer(self, name: str, value: np.ndarray) -> None:
        """Register an array that is saved in the state dict but not trained."""
        self._buffers[name] = np.asarray(value)

    # ----------------------------------------------------------------- forward/backward
    def forward(self, *inputs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, dy: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    def __call__(self, *inputs: Any) -> Any:
        slot = None
        if _calls is not None:  # reserve the slot at entry so parents precede children
            slot = len(_calls)
            _calls.append((self, ()))
        with errors_named_after(self):
            y = self.forward(*inputs)
        if slot is not None and _calls is not None:
            _calls[slot] = (self, np.shape(y))
        return y

    def save_for_backward(self, cache: Any) -> None:
        """Keep ``cache`` for the next backward (nothing is kept under ``no_grad()``)."""
        self._cache = cache if is_grad_enabled() else None

    def pop_cache(self) -> Any:
        """Return the cache of the last forward and forget it: one backward per forward
        (inside :func:`retain_caches`, keep it for the next backward)."""
        cache = self._cache
        if cache is None:
            raise RuntimeError(
                f"{self!r}: backward called without a forward to go back through "
                "(call forward first, outside no_grad(); each forward allows one backward)"
            )
        if not _retaining:
            self._cache = None
        return cache

    # ----------------------------------------------------------------- traversal
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module and all below it, depth first, with dotted names ('' for self)."""
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def children(self) -> Iterator[Module]:
        yield from self._modules.values()

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """Every parameter with its dotted name (``layer1.0.conv1.weight``), each once."""
        seen = set()
        for prefix, module in self.named_modules():
            for name, param in module._parameters.items():
                if id(param) not in seen:
                    seen.add(id(param))
                    yield (f"{prefix}.{name}" if prefix else name), param

    def parameters(self) -> Iterator[Parameter]:
        for _, param in self.named_parameters():
            yield param

    def named_buffers(self) -> Iterator[tuple[str, np.ndarray]]:
        for prefix, module in self.named_modules():
            for name, buffer in module._buffers.items():
                yield (f"{prefix}.{name}" if prefix else name), buffer

    def buffers(self) -> Iterator[np.ndarray]:
        for _, buffer in self.named_buffers():
            yield buffer

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Total number of scalar parameters (only unfrozen ones if asked)."""
        return sum(p.size for p in self.parameters() if p.requires_grad or not trainable_only)

    # ----------------------------------------------------------------- modes and grads
    def train(self, mode: bool = True) -> Module:
        """Training mode (batch norm uses batch statistics); returns self."""
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        """Evaluation mode (batch norm uses running statistics); returns self."""
        return self.train(False)

    def zero_grad(self) -> None:
        for param in self.parameters():
            param.zero_grad()

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Freeze (False) or unfreeze (True) every parameter below; returns self."""
        for param in self.parameters():
            param.requires_grad = requires_grad
        return self

    def to(self, dtype: Any) -> Module:
        """Cast parameters (and their grads) and floating buffers to float32 or float64."""
        dtype = np.dtype(dtype)
        if dtype not in FLOAT_DTYPES:
            raise TypeError(f"{type(self).__name__}.to: expected float32 or float64, got {dtype}")
        for module in self.modules():
            for param in module._parameters.values():
                param.data = param.data.astype(dtype)
                param.grad = param.grad.astype(dtype)
            for name, buffer in module._buffers.items():
                if buffer.dtype.kind == "f":
                    module._buffers[name] = buffer.astype(dtype)
            object.__setattr__(module, "_cache", None)
        return self

    # ----------------------------------------------------------------- state
    def _state_arrays(self) -> dict[str, np.ndarray]:
        """The live arrays behind the state dict, in PyTorch's order."""
        state = {}
        for prefix, module in self.named_modules():
            dot = f"{prefix}." if prefix else ""
            for name, param in module._parameters.items():
                state[dot + name] = param.data
            for name, buffer in module._buffers.items():
                state[dot + name] = buffer
        return state

    def state_dict(self) -> dict[str, np.ndarray]:
        """A copy of every parameter and buffer, keyed by torchvision-style dotted names."""
        return {name: array.copy() for name, array in self._state_arrays().items()}

    def load_state_dict(
        self, state_dict: Mapping[str, np.ndarray], strict: bool = True
    ) -> IncompatibleKeys:
        """Copy values into this module's parameters and buffers (cast to their dtype).

        With ``strict=True`` every key must match; ``num_batches_tracked`` may be absent.
        Mis-shaped values and values that are not real numbers (text, complex) are always
        errors. All problems are reported together in one ``ValueError`` that names the
        keys, and then nothing is changed.
        """
        own = self._state_arrays()
        missing = [k for k in own if k not in state_dict and not k.endswith(_OPTIONAL_KEY_SUFFIX)]
        unexpected = [k for k in state_dict if k not in own]
        values = {k: np.asarray(v) for k, v in state_dict.items() if k in own}
        mismatched = [
            f"{k}: checkpoint {v.shape} vs model {own[k].shape}"
            for k, v in values.items()
            if v.shape != own[k].shape
        ]
        # bool, integers and floats cast safely to the model's float (or integer) arrays;
        # text, objects and complex numbers (whose imaginary part would be dropped) do not.
        wrong_kind = [
            f"{k}: dtype {v.dtype}" for k, v in values.items() if v.dtype.kind not in "biuf"
        ]
        problems = []
        if strict and missing:
            problems.append(f"missing keys: {', '.join(missing)}")
        if strict and unexpected:
            problems.append(f"unexpected keys: {', '.join(unexpected)}")
        if mismatched:
            problems.append(f"shape mismatch: {'; '.join(mismatched)}")
        if wrong_kind:
            problems.append(f"not real numbers: {'; '.join(wrong_kind)}")
        if problems:
            raise ValueError(
                f"cannot load state dict into {type(self).__name__}: " + " | ".join(problems)
            )
        for key, value in values.items():
            np.copyto(own[key], value, casting="unsafe")
        return IncompatibleKeys(missing, unexpected)

    # ----------------------------------------------------------------- printing
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        if not self._modules:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        for name, child in self._modules.items():
            child_lines = repr(child).split("\n")
            lines.append(f"  ({name}): " + "\n  ".join(child_lines))
        lines.append(")")
        return "\n".join(lines)

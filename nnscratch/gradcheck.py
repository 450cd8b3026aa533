"""Finite-difference gradient checks for ops and modules (float64, central differences).

For a random upstream gradient g (a uniform one can hide errors: batch norm's input
gradient is identically zero for it), the scalar L = sum(y * g) has dL/da equal to what
backward returns for input a. Each entry is checked against

    numeric = (L(a + eps) - L(a - eps)) / (2 * eps)

and a tensor passes when  max|analytic - numeric| / max(|analytic|, |numeric|, tiny) < tol,
or when every difference is below ``atol`` (a gradient that is exactly zero, such as a
conv bias followed by batch norm, has only finite-difference noise to compare with).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

_TINY = 1e-30


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with finite differences."""


def _require_float64(where: str, name: str, a: np.ndarray) -> None:
    if not isinstance(a, np.ndarray) or a.dtype != np.float64:
        dtype = getattr(a, "dtype", type(a).__name__)
        raise TypeError(f"gradcheck({where}): {name} must be a float64 array, got {dtype}")


def _upstream_rng(seed: int) -> np.random.Generator:
    """A generator for dy whose stream differs from ``default_rng(seed)``.

    Inputs are often drawn with ``default_rng(0)``; a dy drawn from the same stream would
    equal the input, and dy proportional to x makes some gradients (batch norm's)
    vanish, hiding errors.
    """
    return np.random.default_rng((seed, 0x6AD))


def _entries(a: np.ndarray, max_entries: int | None, rng: np.random.Generator) -> np.ndarray:
    """Flat indices to perturb: all of them, or a random sample of ``max_entries``."""
    if max_entries is None or a.size <= max_entries:
        return np.arange(a.size)
    return np.sort(rng.choice(a.size, size=max_entries, replace=False))


def _compare(
    where: str,
    name: str,
    array: np.ndarray,
    analytic: np.ndarray,
    loss: Callable[[], float],
    *,
    eps: float,
    tol: float,
    atol: float,
    max_entries: int | None,
    rng: np.random.Generator,
    raise_on_failure: bool,
) -> float:
    """Perturb ``array`` in place entry by entry, compare with ``analytic``; return rel. error."""
    if analytic is None or analytic.shape != array.shape:
        shape = None if analytic is None else analytic.shape
        raise GradcheckError(
            f"gradcheck({where}): gradient for {name} has shape {shape}, expected {array.shape}"
        )
    flat = array.reshape(-1)  # a view: writing it perturbs the array the function reads
    if not np.shares_memory(flat, array):
        raise TypeError(f"gradcheck({where}): {name} must be contiguous so it can be perturbed")
    index = _entries(array, max_entries, rng)
    numeric = np.empty(index.size)
    for k, i in enumerate(index):
        original = flat[i]
        flat[i] = original + eps
        plus = loss()
        flat[i] = original - eps
        minus = loss()
        flat[i] = original
        numeric[k] = (plus - minus) / (2 * eps)
    exact = analytic.reshape(-1)[index]
    diff = np.abs(exact - numeric)
    scale = max(np.abs(exact).max(initial=0), np.abs(numeric).max(initial=0), _TINY)
    error = float(diff.max(initial=0) / scale)
    if raise_on_failure and not (error < tol or diff.max(initial=0) < atol):
        worst = int(np.argmax(diff))
        position = np.unravel_index(index[worst], array.shape)
        raise GradcheckError(
            f"gradcheck({where}): gradient of {name} is wrong: relative error {error:.3e} "
            f">= {tol:.0e}; worst at index {tuple(int(p) for p in position)}: "
            f"analytic {exact[worst]:.10g}, numeric {numeric[worst]:.10g}"
        )
    return error


def check_op(
    forward: Callable[..., tuple[np.ndarray, object]],
    backward: Callable[[np.ndarray, object], tuple | np.ndarray],
    inputs: Mapping[str, np.ndarray],
    *,
    name: str | None = None,
    eps: float = 1e-6,
    tol: float = 1e-6,
    atol: float = 1e-8,
    max_entries: int | None = None,
    seed: int = 0,
    raise_on_failure: bool = True,
) -> dict[str, float]:
    """Check a functional pair: ``y, cache = forward(*inputs)``, ``grads = backward(dy, cache)``.

    ``grads`` lists one gradient per input, in order (a single array if there is one
    input); inputs whose gradient is ``None`` are skipped. Returns the relative error
    per checked input; raises :class:`GradcheckError` naming the worst entry on failure.
    """
    where = name or getattr(forward, "__name__", "op")
    arrays = dict(inputs)
    for key, a in arrays.items():
        _require_float64(where, key, a)
    rng = _upstream_rng(seed)
    y, cache = forward(*arrays.values())
    dy = rng.standard_normal(np.shape(y))
    grads = backward(dy if np.ndim(y) else float(dy), cache)
    if not isinstance(grads, tuple):
        grads = (grads,)

    def loss() -> float:
        return float(np.sum(np.asarray(forward(*arrays.values())[0]) * dy))

    errors = {}
    for (key, a), g in zip(arrays.items(), grads, strict=False):
        if g is not None:
            errors[key] = _compare(
                where,
                key,
                a,
                g,
                loss,
                eps=eps,
                tol=tol,
                atol=atol,
                max_entries=max_entries,
                rng=rng,
                raise_on_failure=raise_on_failure,
            )
    return errors


def check_module(
    module,
    x: np.ndarray,
    *,
    eps: float = 1e-6,
    tol: float = 1e-6,
    atol: float = 1e-8,
    max_entries: int | None = None,
    seed: int = 0,
    raise_on_failure: bool = True,
) -> dict[str, float]:
    """Check ``module.backward`` for the input x and every trainable parameter.

    The module must hold float64 parameters (``module.to(np.float64)``). In training
    mode batch norm's running statistics move with every forward call; the outputs being
    differentiated do not depend on them. Returns relative errors keyed ``"input"`` and by
    parameter name.
    """
    where = type(module).__name__
    _require_float64(where, "input", x)
    params = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    for key, p in params:
        _require_float64(where, key, p.data)
    rng = _upstream_rng(seed)
    module.zero_grad()
    y = module(x)
    dy = rng.standard_normal(y.shape)
    dx = module.backward(dy)

    def loss() -> float:
        return float(np.sum(module(x) * dy))

    checks = [("input", x, dx)] + [(key, p.data, p.grad.copy()) for key, p in params]
    return {
        key: _compare(
            where,
            key,
            array,
            analytic,
            loss,
            eps=eps,
            tol=tol,
            atol=atol,
            max_entries=max_entries,
            rng=rng,
            raise_on_failure=raise_on_failure,
        )
        for key, array, analytic in checks
    }

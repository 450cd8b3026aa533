"""Your own tier: the layers run the exercise solutions you wrote, the readable ops the rest.

    from nnscratch import exercises
    mine = exercises.my_tier(["01_layers_and_backprop.ipynb", "my_batch_norm.py"])
    print(mine)                          # which pieces are yours, which are not written yet
    with mine:                           # or my_tier({"conv2d_forward": conv2d_forward, ...})
        loss = criterion(model(x), y)    # your convolution, your ReLU, ...
        model.backward(criterion.backward())
    mine.times["conv2d_backward"]        # calls and seconds of each op, yours or not

Your pieces come from a dict, from Python files or from the lessons' notebooks you wrote
them in (their ``# exercise: NAME`` cells). Each is checked first (``exercises.check``):
one whose check fails is refused with one line that names it, so a net never trains on a
wrong gradient; a stub you have not written yet (it raises ``NotImplementedError``) is
left out, and the readable op runs in its place. The pieces a layer can use, and what
they replace:

    linear, cross_entropy                       the op pairs themselves
    conv2d_forward, conv2d_backward             conv2d (square stride and padding)
    im2col, col2im                              the columns inside a conv2d you did not write
    relu_backward, global_avg_pool_backward     those backward passes
    max_pool_backward                           max pooling's (square, no padding)
    batch_norm_forward, batch_norm_backward     batch norm in training mode
    residual_backward                           the `+` and the ReLU after it, in a block's
                                                backward (not a pre-activation block's)

Where a layer's arguments are outside a piece's signature (a non-square stride, padded
pooling, label smoothing, eval mode), that call runs the readable op.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import runpy
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nnscratch.exercises.checking import NOT_IMPLEMENTED
from nnscratch.functional import backend as backends
from nnscratch.functional.conv import Conv2dCache, conv_geometry
from nnscratch.functional.conv import col2im as readable_col2im
from nnscratch.functional.conv import im2col as readable_im2col
from nnscratch.functional.timed import timed

# The ops of the backend each piece takes part in.
PIECE_OPS = {
    "linear": ("linear_forward", "linear_backward"),
    "relu_backward": ("relu_backward", "residual_backward"),  # the ReLU after a block's `+`
    "im2col": ("conv2d_forward", "conv2d_backward"),
    "col2im": ("conv2d_backward",),
    "conv2d_forward": ("conv2d_forward",),
    "conv2d_backward": ("conv2d_backward",),
    "max_pool_backward": ("max_pool2d_backward",),
    "global_avg_pool_backward": ("global_avg_pool2d_backward",),
    "batch_norm_forward": ("batch_norm2d_forward",),
    "batch_norm_backward": ("batch_norm2d_backward",),
    "cross_entropy": ("cross_entropy_forward", "cross_entropy_backward"),
    "residual_backward": ("residual_backward",),
}
LAYER_PIECES = tuple(PIECE_OPS)
# A piece written as two functions is found in a solutions file under these names.
PAIRS = {
    "linear": ("linear_forward", "linear_backward"),
    "cross_entropy": ("cross_entropy_forward", "cross_entropy_backward"),
}
EXERCISE_MARK = "# exercise: "
MAX_NOTEBOOK_BYTES = 64 << 20


class PieceRefused(ValueError):
    """A piece of yours whose check does not pass."""


def load_solutions(*paths: str | Path) -> dict[str, Any]:
    """The layer pieces defined in Python files or in a notebook's ``# exercise: NAME``
    cells (functions named as ``describe`` says; ``np`` is imported for them); a piece
    defined in a later file replaces an earlier one."""
    found: dict[str, Any] = {}
    for path in map(Path, paths):
        if not path.is_file():
            raise FileNotFoundError(f"my_tier: no solutions file {path}")
        if path.suffix == ".ipynb":
            namespace = _run_exercise_cells(path)
        else:
            namespace = runpy.run_path(str(path), init_globals={"np": np})
        for name in LAYER_PIECES:
            if name in PAIRS and all(callable(namespace.get(n)) for n in PAIRS[name]):
                found[name] = tuple(namespace[n] for n in PAIRS[name])
            elif callable(namespace.get(name)):
                found[name] = namespace[name]
    return found


def _run_exercise_cells(path: Path) -> dict[str, Any]:
    """Run the code cells of a notebook that start with ``# exercise: NAME``, in order."""
    if path.stat().st_size > MAX_NOTEBOOK_BYTES:
        raise ValueError(f"my_tier: {path} is larger than {MAX_NOTEBOOK_BYTES >> 20} MB")
    try:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        sources = [
            "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in cells
            if c["cell_type"] == "code"
        ]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"my_tier: {path} is not a notebook ({error})") from None
    namespace: dict[str, Any] = {"np": np}
    for source in sources:
        if not source.startswith(EXERCISE_MARK):
            continue
        name = source[len(EXERCISE_MARK) :].split("\n", 1)[0].strip()
        try:
            exec(compile(source, f"{path}, exercise {name}", "exec"), namespace)
        except Exception as error:  # the learner's own cell: say which and why, in one line
            raise ValueError(
                f"my_tier: {path}, the cell of exercise {name} does not run on its own "
                f"({type(error).__name__}: {error})"
            ) from None
    return namespace


def build_backend(pieces: Mapping[str, Any]) -> backends.Backend:
    """The readable backend with the given (already checked) pieces in place of its ops."""
    unknown = sorted(set(pieces) - set(LAYER_PIECES))
    if unknown:
        raise KeyError(
            f"my_tier: {', '.join(unknown)} is not a layer's piece; "
            f"the pieces are: {', '.join(LAYER_PIECES)}"
        )
    readable = backends.readable()
    ops: dict[str, Callable] = {}
    if "linear" in pieces:
        ops["linear_forward"], ops["linear_backward"] = _linear(*pieces["linear"])
    if "cross_entropy" in pieces:
        ops["cross_entropy_forward"], ops["cross_entropy_backward"] = _cross_entropy(
            *pieces["cross_entropy"], readable
        )
    if "relu_backward" in pieces:
        # your relu_backward(dy, x) takes the readable cache y = max(x, 0) as its x:
        # y > 0 exactly where x > 0
        ops["relu_backward"] = pieces["relu_backward"]
    relu_backward = ops.get("relu_backward", readable.relu_backward)
    if "residual_backward" in pieces:
        ops["residual_backward"] = _residual(pieces["residual_backward"], readable)
    else:  # the readable `+` on your ReLU
        ops["residual_backward"] = functools.partial(
            readable.residual_backward, relu_backward=relu_backward
        )
    if "global_avg_pool_backward" in pieces:
        ops["global_avg_pool2d_backward"] = pieces["global_avg_pool_backward"]
    if "max_pool_backward" in pieces:
        ops["max_pool2d_forward"], ops["max_pool2d_backward"] = _max_pool(
            pieces["max_pool_backward"], readable
        )
    if {"batch_norm_forward", "batch_norm_backward"} & set(pieces):
        ops["batch_norm2d_forward"], ops["batch_norm2d_backward"] = _batch_norm(
            pieces.get("batch_norm_forward"), pieces.get("batch_norm_backward"), readable
        )
    if {"im2col", "col2im", "conv2d_forward", "conv2d_backward"} & set(pieces):
        ops["conv2d_forward"], ops["conv2d_backward"] = _conv2d(pieces, readable)
    return dataclasses.replace(readable, name="mine", **ops)


class MyTier:
    """Your checked pieces as a backend (``with tier:`` runs the layers on it), with what is
    yours (``yours``: name -> where it came from), what is not (``missing``) and each op's
    ``times`` inside the ``with`` blocks (calls, own seconds: :mod:`nnscratch.functional.timed`)."""

    def __init__(self, solutions: Mapping[str, Any] | str | Path | Sequence[str | Path]):
        from nnscratch import exercises

        if isinstance(solutions, (str, Path)):
            solutions = [solutions]
        if isinstance(solutions, Mapping):
            found = {name: (piece, "given") for name, piece in solutions.items()}
        else:
            found = {}
            for path in solutions:
                found.update({n: (p, Path(path).name) for n, p in load_solutions(path).items()})
        written = {}
        for name, (piece, where) in found.items():
            if name in LAYER_PIECES:  # build_backend names any other
                result = exercises.check(name, piece)
                if result.message == f"{name}: {NOT_IMPLEMENTED}":
                    continue  # a stub: not yours yet
                if not result.passed:
                    first_line = result.message.splitlines()[0]
                    raise PieceRefused(
                        f"my_tier: your {name} does not pass its check: {first_line}"
                    )
            written[name] = (piece, where)
        self.backend, self.times = timed(build_backend({n: p for n, (p, _) in written.items()}))
        self.yours = {name: where for name, (_, where) in written.items()}
        self.missing = tuple(name for name in LAYER_PIECES if name not in written)
        self._switches: list = []

    def whose(self, op: str) -> str:
        """Whose code backend op ``op`` runs: ``"yours"`` if a piece of yours takes part in
        it (where its signature applies), else ``"library"``."""
        return "yours" if any(op in PIECE_OPS[name] for name in self.yours) else "library"

    def __enter__(self) -> MyTier:
        switch = backends.using(self.backend)
        switch.__enter__()
        self._switches.append(switch)
        return self

    def __exit__(self, *exc) -> None:
        self._switches.pop().__exit__(*exc)

    def __str__(self) -> str:
        lines = [f"  {name:<26} yours ({where})" for name, where in self.yours.items()]
        lines += [f"  {name:<26} not written yet: the library's runs" for name in self.missing]
        return "\n".join(["the pieces of my_tier:", *lines])


def my_tier(solutions: Mapping[str, Any] | str | Path | Sequence[str | Path]) -> MyTier:
    """Your pieces (a dict, solutions files or notebooks), checked: ``with my_tier(...):``
    every layer runs them where they apply and the readable ops elsewhere; a piece that
    fails its check is refused (:class:`PieceRefused`), a stub is left out."""
    return MyTier(solutions)


# --------------------------------------------------------------- adapters, one per layer
def _square(pair: tuple[int, int]) -> int | None:
    return pair[0] if pair[0] == pair[1] else None


def _linear(forward, backward):
    """Your pair, with a zero bias where the layer has none."""

    def linear_forward(x, w, b=None):
        y, cache = forward(x, w, b if b is not None else np.zeros(w.shape[0], x.dtype))
        return y, (cache, b is not None)

    def linear_backward(dy, cache):
        yours, has_bias = cache
        dx, dw, db = backward(dy, yours)
        return dx, dw, db if has_bias else None

    return linear_forward, linear_backward


def _cross_entropy(forward, backward, readable):
    """Your pair; label smoothing (outside its signature) runs the readable op."""

    def cross_entropy_forward(logits, targets, label_smoothing=0.0):
        if label_smoothing:
            return readable.cross_entropy_forward(logits, targets, label_smoothing)
        loss, cache = forward(logits, targets)
        return float(loss), _Yours(cache)

    def cross_entropy_backward(dloss, cache):
        if isinstance(cache, _Yours):
            return backward(dloss, cache.cache)
        return readable.cross_entropy_backward(dloss, cache)

    return cross_entropy_forward, cross_entropy_backward


@dataclasses.dataclass(frozen=True)
class _Yours:
    """A cache made by your forward (the readable op's caches are never wrapped)."""

    cache: Any


def _residual(backward, readable):
    """Your residual_backward where a ReLU follows the `+`; the readable sum where nothing does."""

    def residual_backward(dy, out, main_backward, shortcut_backward):
        if out is None:
            return readable.residual_backward(dy, out, main_backward, shortcut_backward)
        return backward(dy, out, main_backward, shortcut_backward)

    return residual_backward


def _max_pool(backward, readable):
    """The readable forward; your backward where the pooling is square and unpadded."""

    def max_pool2d_forward(x, kernel_size, stride=None, padding=0):
        y, cache = readable.max_pool2d_forward(x, kernel_size, stride, padding)
        return y, (cache, x, kernel_size, stride if stride is not None else kernel_size, padding)

    def max_pool2d_backward(dy, cache):
        readable_cache, x, kernel_size, stride, padding = cache
        k, s = _square(_pairs(kernel_size)), _square(_pairs(stride))
        if k is None or s is None or _pairs(padding) != (0, 0):
            return readable.max_pool2d_backward(dy, readable_cache)
        return backward(dy, x, k, s)

    return max_pool2d_forward, max_pool2d_backward


def _pairs(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _batch_norm(forward, backward, readable):
    """Your training-mode forward and backward (either may be the readable op's); eval
    mode runs the readable op. The readable cache is made alongside, from copies of the
    running statistics, for the backward you did not write."""

    def batch_norm2d_forward(x, gamma, beta, running_mean, running_var, *, training, **kw):
        momentum, eps = kw.get("momentum", 0.1), kw.get("eps", 1e-5)
        if forward is None or not training:
            y, cache = readable.batch_norm2d_forward(
                x, gamma, beta, running_mean, running_var, training=training, **kw
            )
            return y, (cache, eps)
        _, cache = readable.batch_norm2d_forward(
            x, gamma, beta, running_mean.copy(), running_var.copy(), training=True, **kw
        )
        y, new_mean, new_var = forward(x, gamma, beta, running_mean, running_var, momentum, eps)
        running_mean[...], running_var[...] = new_mean, new_var
        return y, (cache, eps)

    def batch_norm2d_backward(dy, cache):
        readable_cache, eps = cache
        if backward is None or not readable_cache.training:
            return readable.batch_norm2d_backward(dy, readable_cache)
        return backward(dy, readable_cache.x, readable_cache.gamma, eps)

    return batch_norm2d_forward, batch_norm2d_backward


def _conv2d(pieces, readable):
    """Your conv2d pair; where you wrote only im2col/col2im, the readable conv's product
    on your columns; a non-square stride or padding runs the readable op."""
    forward, backward = pieces.get("conv2d_forward"), pieces.get("conv2d_backward")
    im2col, col2im = pieces.get("im2col"), pieces.get("col2im")

    def conv2d_forward(x, w, b=None, *, stride=1, padding=0):
        g = conv_geometry("conv2d", x, w, stride, padding)
        s, p = _square((g.sh, g.sw)), _square((g.ph, g.pw))
        if s is None or p is None or (forward is None and im2col is None):
            return readable.conv2d_forward(x, w, b, stride=stride, padding=padding)
        cache = Conv2dCache(np.ascontiguousarray(x), w, b is not None, g)
        if forward is not None:
            y = forward(x, w, b if b is not None else np.zeros(w.shape[0], x.dtype), s, p)
        else:
            C_out, N = w.shape[0], x.shape[0]
            y = w.reshape(C_out, -1) @ im2col(x, g.KH, g.KW, s, p)  # (C_out, N*H_out*W_out)
            if b is not None:
                y += b[:, None]
            y = y.reshape(C_out, N, g.H_out, g.W_out).transpose(1, 0, 2, 3)
        return np.ascontiguousarray(y), cache

    def conv2d_backward(dy, cache):
        x, w, has_bias, g = cache
        s, p = _square((g.sh, g.sw)), _square((g.ph, g.pw))
        if s is None or p is None or (backward is None and im2col is None and col2im is None):
            return readable.conv2d_backward(dy, cache)
        if backward is not None:
            dx, dw, db = backward(dy, x, w, s, p)
            return dx, dw, db if has_bias else None
        columns = im2col or (lambda x, KH, KW, s, p: readable_im2col(x, g))
        to_image = col2im or (lambda dcols, shape, KH, KW, s, p: readable_col2im(dcols, shape, g))
        C_out = w.shape[0]
        dY = dy.transpose(1, 0, 2, 3).reshape(C_out, -1)  # (C_out, N*H_out*W_out)
        dw = (dY @ columns(x, g.KH, g.KW, s, p).T).reshape(w.shape)
        dx = to_image(w.reshape(C_out, -1).T @ dY, x.shape, g.KH, g.KW, s, p)
        return dx, dw, dy.sum(axis=(0, 2, 3)) if has_bias else None

    return conv2d_forward, conv2d_backward

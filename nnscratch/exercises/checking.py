"""The engine behind every exercise: run a learner's code on several cases and say precisely
what is wrong.

For each case the submission's outputs are

1. refused in one sentence if they have the wrong count, type, shape or dtype;
2. compared with the reference (float64, ``|got - want| <= atol + rtol * |want|``);
3. for a gradient, compared with central finite differences of the case's scalar loss
   ``L = sum(forward(...) * dy)`` (dy random, never uniform), relative error below 1e-6.

When an output is wrong, the exercise's catalogue of known mistakes is run on the same
cases; a mistake whose value of that output equals the learner's on *every* case (or that
raises or is refused the same way on the same case) gives its hint. Otherwise the message
names the output, the case in words, the worst index, and the expected and received values.
"""

from __future__ import annotations

import functools
import html
import traceback
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

RTOL, ATOL = 1e-7, 1e-10  # output vs reference: both are float64 computations of one formula
FD_EPS, FD_TOL, FD_ATOL = 1e-6, 1e-6, 1e-8  # finite differences, as in nnscratch.gradcheck
_TINY = 1e-30
NOT_IMPLEMENTED = "not implemented yet."  # what a stub's check says, after the name
# Frames inside these are not the learner's: an error is located at the learner's own line.
_LIBRARY_DIRS = (str(Path(np.__file__).parent), str(Path(__file__).parents[1]))


@dataclass(frozen=True)
class CheckResult:
    """What ``check`` found: ``passed`` and a message (shown nicely in a notebook)."""

    passed: bool
    message: str

    def __str__(self) -> str:
        return self.message

    def _repr_html_(self) -> str:
        colour, mark = ("#2e7d32", "&#10004;") if self.passed else ("#c62828", "&#10008;")
        return (
            f'<div style="border-left: 4px solid {colour}; padding: 0.2em 0.8em">'
            f'<span style="color: {colour}; font-weight: bold">{mark}</span> '
            f'<pre style="white-space: pre-wrap; display: inline">{html.escape(self.message)}'
            "</pre></div>"
        )


@dataclass(frozen=True)
class Output:
    """One output of an exercise.

    ``like`` names the input whose shape it has (for the refusal sentence); with
    ``gradient=True`` it is dL/d(like), checked against finite differences too.
    """

    name: str
    like: str | None = None
    gradient: bool = False


@dataclass(frozen=True)
class Case:
    """One input to check on: words for the messages and the arguments, in signature order.

    A backward exercise also gives ``point`` (the arrays the forward reads) and the scalar
    ``loss(point)`` whose gradients the outputs are; ``loss=None`` at a kink or a tie,
    where finite differences mean nothing.
    """

    words: str
    args: Mapping[str, Any]
    point: Mapping[str, np.ndarray] | None = None
    loss: Callable[[Mapping[str, np.ndarray]], float] | None = None


@dataclass(frozen=True)
class Mistake:
    """A known wrong implementation (a function, a pair or a number) and the hint it earns."""

    hint: str
    submission: Any


class Refusal(Exception):
    """A submission's result has the wrong structure; the message is one sentence."""


def call(fn: Callable, args: Mapping[str, Any]) -> Any:
    """Run a learner's function on a case's arguments, in order."""
    return fn(*args.values())


@dataclass(frozen=True)
class Exercise:
    """An exercise: what to write, the reference, the cases and the known mistakes.

    ``kind`` is what ``check`` takes: ``"function"``, ``"pair"`` (forward, backward) or
    ``"number"`` (a closed question); ``run(submission, args)`` produces the outputs.
    """

    name: str
    title: str
    signature: str
    task: str
    outputs: tuple[Output, ...]
    reference: Any
    cases: Callable[[], list[Case]]
    mistakes: tuple[Mistake, ...] = ()
    kind: str = "function"
    run: Callable[[Any, Mapping[str, Any]], Any] = call
    rtol: float = RTOL
    atol: float = ATOL

    def describe(self) -> str:
        """The title, how to submit, the signature and the task."""
        submit = {
            "function": "your_function",
            "pair": "(your_forward, your_backward)",
            "number": "your_answer",
        }[self.kind]
        signature = "\n".join(f"    {line}" for line in self.signature.splitlines())
        return (
            f"{self.name}: {self.title}\n\n{signature}\n\n{self.task.strip()}\n\n"
            f'Check it with  check("{self.name}", {submit})'
        )


# ----------------------------------------------------------------------- words
def kind_of(value: Any) -> str:
    """A few words for what a value is: 'None', 'a tuple of 2', 'an array of shape (3,)'."""
    if value is None:
        return "None"
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def image_words(shape: tuple[int, ...]) -> str:
    """'batch 1, 2 channels, 5x7 image' for an (N, C, H, W) shape."""
    N, C, H, W = shape
    return f"batch {N}, {C} channel{'s' * (C != 1)}, {H}x{W} image"


def _number(value: float) -> str:
    return f"{value:.6g}"


# ----------------------------------------------------------------------- structure
def conform(name: str, value: Any, want: np.ndarray, like: str | None) -> np.ndarray:
    """``value`` as a float64 array shaped like ``want``, or a one-sentence :class:`Refusal`."""
    if want.ndim == 0:
        if isinstance(value, np.ndarray) and value.size != 1:
            raise Refusal(f"{name} should be a single number, but it has shape {value.shape}")
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number, np.ndarray)):
            raise Refusal(f"{name} should be a number, but it is {kind_of(value)}")
        return np.asarray(value, dtype=np.float64).reshape(())
    if not isinstance(value, np.ndarray):
        raise Refusal(f"{name} should be a numpy array, but it is {kind_of(value)}")
    if value.shape != want.shape:
        against = (
            f"but {like} has shape {want.shape}" if like else f"but should have shape {want.shape}"
        )
        transposed = value.ndim >= 2 and value.shape == want.shape[::-1]
        raise Refusal(
            f"{name} has shape {value.shape} {against}" + (" (transposed?)" if transposed else "")
        )
    if value.dtype != want.dtype:
        against = (
            f"but {like} has dtype {want.dtype}" if like else f"but should have dtype {want.dtype}"
        )
        raise Refusal(f"{name} has dtype {value.dtype} {against}")
    return value


def _split(exercise: Exercise, result: Any) -> tuple:
    """The raw result as one value per output."""
    outputs = exercise.outputs
    if len(outputs) == 1:
        return (result,)
    if not isinstance(result, (tuple, list)) or len(result) != len(outputs):
        names = ", ".join(o.name for o in outputs)
        raise Refusal(
            f"{exercise.name} should give {len(outputs)} values ({names}), "
            f"but it gave {kind_of(result)}"
        )
    return tuple(result)


def run_pair(forward_args: tuple[str, ...], upstream: str, gradients: tuple[str, ...]):
    """A runner for a (forward, backward) pair: ``y, cache = forward(*forward_args)``, then
    ``backward(args[upstream], cache)`` returns ``gradients``; the outputs are y and them."""

    def run(pair: tuple[Callable, Callable], args: Mapping[str, Any]) -> tuple:
        forward, backward = pair
        result = forward(*(args[k] for k in forward_args))
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise Refusal(
                f"the forward should return a pair (y, cache), but it gave {kind_of(result)}"
            )
        grads = backward(args[upstream], result[1])
        if len(gradients) == 1:
            return (result[0], grads)
        if not isinstance(grads, (tuple, list)) or len(grads) != len(gradients):
            raise Refusal(
                f"the backward should return {len(gradients)} values ({', '.join(gradients)}), "
                f"but it gave {kind_of(grads)}"
            )
        return (result[0], *grads)

    return run


def _refuse_submission(exercise: Exercise, submission: Any) -> str | None:
    """One sentence if the submission is not the kind of thing the exercise takes."""
    if exercise.kind == "function" and not callable(submission):
        return f"check expects your function, but got {kind_of(submission)}"
    if exercise.kind == "pair" and not (
        isinstance(submission, (tuple, list))
        and len(submission) == 2
        and all(callable(f) for f in submission)
    ):
        return (
            f"check expects a pair (forward, backward) of functions, but got {kind_of(submission)}"
        )
    if exercise.kind == "number" and (
        isinstance(submission, bool) or not isinstance(submission, (int, float, np.number))
    ):
        return f"check expects a number, but got {kind_of(submission)}"
    return None


# ----------------------------------------------------------------------- running
def read_only(value: Any) -> Any:
    """Arrays are made read-only, so a submission that writes into its inputs fails loudly."""
    if isinstance(value, np.ndarray):
        value.setflags(write=False)
    return value


def _problem(error: BaseException) -> str:
    """The exception in one line, with the line of the learner's code that raised it."""
    if isinstance(error, Refusal):
        return str(error)
    where = ""
    frames = [
        f
        for f in traceback.extract_tb(error.__traceback__)
        if not f.filename.startswith(_LIBRARY_DIRS)
    ]
    if frames:
        frame = frames[-1]
        code = f": {frame.line}" if frame.line else ""
        where = f" (in {frame.name}, line {frame.lineno}{code})"
    return f"your code raised {type(error).__name__}: {error}{where}"


def _attempt(exercise: Exercise, submission: Any, case: Case, want: tuple) -> tuple | BaseException:
    """The outputs of ``submission`` on ``case``, conformed to the reference's, or the error."""
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            values = _split(exercise, exercise.run(submission, case.args))
        return tuple(
            conform(o.name, v, w, o.like) for o, v, w in zip(exercise.outputs, values, want)
        )
    except Exception as error:  # a learner's bug of any kind becomes a message
        return error


@dataclass(frozen=True)
class _Prepared:
    """A case with the reference's outputs and, for gradients, the finite differences."""

    case: Case
    want: tuple[np.ndarray, ...]
    numeric: dict[str, np.ndarray]


def numeric_gradient(
    loss: Callable[[Mapping[str, np.ndarray]], float],
    point: Mapping[str, np.ndarray],
    name: str,
) -> np.ndarray:
    """dL/d(point[name]) by central differences: (L(a + eps) - L(a - eps)) / (2 eps)."""
    arrays = {k: np.array(v, dtype=np.float64) for k, v in point.items()}  # writable copies
    flat = arrays[name].reshape(-1)
    grad = np.empty(flat.size)
    for i in range(flat.size):
        original = flat[i]
        flat[i] = original + FD_EPS
        plus = loss(arrays)
        flat[i] = original - FD_EPS
        minus = loss(arrays)
        flat[i] = original
        grad[i] = (plus - minus) / (2 * FD_EPS)
    return grad.reshape(arrays[name].shape)


@functools.cache
def _prepared(exercise: Exercise) -> tuple[_Prepared, ...]:
    """The exercise's cases, built once, with what every submission is compared to."""
    prepared = []
    for case in exercise.cases():
        for value in [*case.args.values(), *(case.point or {}).values()]:
            read_only(value)
        values = _split(exercise, exercise.run(exercise.reference, case.args))
        want = tuple(np.asarray(v, dtype=np.float64) for v in values)
        numeric = {}
        if case.loss is not None:
            for o in exercise.outputs:
                if o.gradient:
                    numeric[o.name] = numeric_gradient(case.loss, case.point, o.like)
        prepared.append(_Prepared(case, want, numeric))
    return tuple(prepared)


@functools.cache
def _mistake_attempts(exercise: Exercise) -> tuple[tuple[tuple | BaseException, ...], ...]:
    """Each known mistake's outcome on every case."""
    return tuple(
        tuple(_attempt(exercise, m.submission, p.case, p.want) for p in _prepared(exercise))
        for m in exercise.mistakes
    )


# ----------------------------------------------------------------------- comparing
def _close(got: np.ndarray, want: np.ndarray, exercise: Exercise) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.isclose(got, want, rtol=exercise.rtol, atol=exercise.atol, equal_nan=True)


def _worst(got: np.ndarray, want: np.ndarray, bad: np.ndarray) -> tuple[int, ...]:
    """The index of the largest difference among the entries flagged ``bad``."""
    with np.errstate(all="ignore"):
        gap = np.nan_to_num(np.abs(got - want), nan=np.inf)
    return tuple(int(i) for i in np.unravel_index(np.argmax(np.where(bad, gap, -1)), got.shape))


def _fd_bad(got: np.ndarray, numeric: np.ndarray) -> np.ndarray | None:
    """Entries that disagree with finite differences (None if the tensor agrees)."""
    with np.errstate(all="ignore"):
        diff = np.nan_to_num(np.abs(got - numeric), nan=np.inf)
        scale = max(np.abs(got).max(initial=0), np.abs(numeric).max(initial=0), _TINY)
    if diff.max(initial=0) / scale < FD_TOL or diff.max(initial=0) < FD_ATOL:
        return None
    return diff >= FD_TOL * scale


@dataclass
class _Wrong:
    """An output that is wrong: its first bad case, the worst entry there, how many cases."""

    output: Output
    case: Case
    index: tuple[int, ...]
    want: float
    got: float
    numeric: float | None
    count: int = 1


def _wrong_outputs(exercise: Exercise, attempts: list[tuple]) -> dict[str, _Wrong]:
    wrong: dict[str, _Wrong] = {}
    for prepared, got_all in zip(_prepared(exercise), attempts):
        for o, got, want in zip(exercise.outputs, got_all, prepared.want):
            bad = ~_close(got, want, exercise)
            numeric = prepared.numeric.get(o.name)
            if not bad.any() and numeric is not None:
                bad = _fd_bad(got, numeric)
            if bad is None or not bad.any():
                continue
            if o.name in wrong:
                wrong[o.name].count += 1
                continue
            index = _worst(got, want, bad)
            wrong[o.name] = _Wrong(
                o,
                prepared.case,
                index,
                float(want[index]),
                float(got[index]),
                None if numeric is None else float(numeric[index]),
            )
    return wrong


def _same(a: tuple | BaseException, b: tuple | BaseException, position: int, ex: Exercise) -> bool:
    """Whether output ``position`` of two attempts agrees (both arrays, close everywhere)."""
    if isinstance(a, BaseException) or isinstance(b, BaseException):
        return False
    return a[position].shape == b[position].shape and bool(
        _close(a[position], b[position], ex).all()
    )


def _matching_hint(exercise: Exercise, attempts: list[tuple], position: int) -> str | None:
    """The hint of the first mistake whose output ``position`` equals the learner's everywhere."""
    for mistake, outcome in zip(exercise.mistakes, _mistake_attempts(exercise)):
        if all(_same(a, b, position, exercise) for a, b in zip(attempts, outcome)):
            return mistake.hint
    return None


def _problem_hint(exercise: Exercise, case_index: int, error: BaseException) -> str | None:
    """The hint of a mistake that fails the same way (same exception, same words) on the same case."""
    if isinstance(error, ValueError) and "read-only" in str(error):
        return (
            "your function writes into one of its inputs (they are read-only here): "
            "compute into a new array instead (np.zeros_like, x.copy(), a + b)"
        )
    for mistake, outcome in zip(exercise.mistakes, _mistake_attempts(exercise)):
        failure = outcome[case_index]
        if type(failure) is type(error) and str(failure) == str(error):
            return mistake.hint
    return None


# ----------------------------------------------------------------------- the check
def _value_words(exercise: Exercise, w: _Wrong) -> str:
    """'at index (0, 1): expected 0.5 (finite differences: 0.5), received 0.25'."""
    if exercise.kind == "number":
        return f"{_number(w.got)} is not the answer"
    where = f"at index {w.index}: " if w.index else ""
    numeric = "" if w.numeric is None else f" (finite differences: {_number(w.numeric)})"
    return f"{where}expected {_number(w.want)}{numeric}, received {_number(w.got)}"


def run_check(exercise: Exercise, submission: Any) -> CheckResult:
    """Check a submission on every case of ``exercise``; never raises on a learner's bug.

    A question's stub is Python's ``NotImplemented`` (``answer = NotImplemented``).
    """
    if exercise.kind == "number" and submission is NotImplemented:
        return CheckResult(False, f"{exercise.name}: {NOT_IMPLEMENTED}")
    refusal = _refuse_submission(exercise, submission)
    if refusal:
        return CheckResult(False, f"{exercise.name}: {refusal}.")
    attempts = []
    for i, prepared in enumerate(_prepared(exercise)):
        outcome = _attempt(exercise, submission, prepared.case, prepared.want)
        if isinstance(outcome, NotImplementedError):
            return CheckResult(False, f"{exercise.name}: {NOT_IMPLEMENTED}")
        if isinstance(outcome, BaseException):
            hint = _problem_hint(exercise, i, outcome)
            message = f"{exercise.name}: {_problem(outcome)}, in case: {prepared.case.words}."
            return CheckResult(False, message + (f"\nHint: {hint}." if hint else ""))
        attempts.append(outcome)
    wrong = _wrong_outputs(exercise, attempts)
    if not wrong:
        return CheckResult(True, _passed(exercise, len(attempts)))
    return CheckResult(False, _failed(exercise, attempts, wrong))


def _passed(exercise: Exercise, cases: int) -> str:
    numeric = any(p.numeric for p in _prepared(exercise))
    against = " and with central finite differences" if numeric else ""
    what = "the answer agrees" if exercise.kind == "number" else f"all {cases} cases agree"
    return f"{exercise.name}: passed ({what} with the reference{against})."


def _failed(exercise: Exercise, attempts: list[tuple], wrong: dict[str, _Wrong]) -> str:
    """One line per wrong output, grouped under the known mistake that explains them."""
    groups: dict[str, list[str]] = {}  # hint -> lines, in the order of the outputs
    for position, o in enumerate(exercise.outputs):
        if o.name not in wrong:
            continue
        w = wrong[o.name]
        if exercise.kind == "number":
            line = f"{_value_words(exercise, w)}."
        else:
            line = (
                f"{o.name} is wrong in {w.count} of {len(attempts)} cases; first in case: "
                f"{w.case.words}, {_value_words(exercise, w)}."
            )
        yours = "work" if exercise.kind == "number" else o.name
        hint = _matching_hint(exercise, attempts, position) or (
            f'no common mistake matches; compare your {yours} with describe("{exercise.name}")'
        )
        groups.setdefault(hint, []).append(line)
    lines = [line for hint, group in groups.items() for line in [*group, f"Hint: {hint}."]]
    right = [o.name for o in exercise.outputs if o.name not in wrong]
    if right and exercise.kind != "number":
        lines.append(f"{', '.join(right)} {'is' if len(right) == 1 else 'are'} right.")
    return f"{exercise.name}: " + "\n".join(lines)

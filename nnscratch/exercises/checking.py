"""The engine behind every exercise: run a learner's code on several cases and say precisely
what is wrong.

For each case the submission's outputs are

1. refused in one sentence if they have the wrong count, type, shape or dtype;
2. compared with the reference (float64, ``|got - want| <= atol + rtol * |want|``);
3. for a gradient, compared with central finite differences of the case's scalar loss
   ``L = sum(forward(...) * dy)`` (dy random, never uniform), relative error below 1e-6.

A submission that passes is run again on each case's float32 twin (its float64 arrays
rounded to float32, for a case whose arguments hold no functions) and compared, with
float32's tolerance, to the reference computed on the rounded values in float64 (training
runs in float32). A float32 or float64 result is accepted there; in the float64 cases a
result keeps the input's dtype. A wrong value close to the expected one is printed with the
digits that show the difference, and the difference.

When an output is wrong, the exercise's catalogue of known mistakes is run on the same
cases; a mistake whose value of that output equals the learner's on *every* case (or that
raises or is refused the same way on the same case) gives its hint. Otherwise the message
names the output, the case in words, the worst index, and the expected and received values.
"""

from __future__ import annotations

import functools
import html
import math
import traceback
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

RTOL, ATOL = 1e-7, 1e-10  # output vs reference: both are float64 computations of one formula
RTOL32, ATOL32 = 1e-4, 1e-5  # a float32 computation vs float64 (ATOL32 scaled by the output)
NEAR = 1e-3  # a relative difference below this is printed with the digits that show it
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


def as_floats(fn: Callable, args: Mapping[str, Any]) -> Any:
    """Run ``fn``; a list, tuple or numeric array of numbers is read as float64 numbers."""
    result = call(fn, args)
    if isinstance(result, (list, tuple)) or (
        isinstance(result, np.ndarray) and result.dtype.kind in "iuf"
    ):
        return np.asarray(result, dtype=np.float64)
    return result


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
def is_number(value: Any) -> bool:
    """An int, a float, a numpy scalar or a 0-d numeric array (a bool is not a number)."""
    if isinstance(value, np.ndarray):
        return value.ndim == 0 and value.dtype.kind in "iuf"
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def conform(
    name: str,
    value: Any,
    want: np.ndarray,
    like: str | None,
    dtypes: tuple[np.dtype, ...] | None = None,
) -> np.ndarray:
    """``value`` as an array shaped like ``want``, of ``want``'s dtype or one of ``dtypes``,
    or a one-sentence :class:`Refusal`."""
    if want.ndim == 0:
        if isinstance(value, np.ndarray):
            if value.size != 1:
                raise Refusal(f"{name} should be a single number, but it has shape {value.shape}")
            value = value.reshape(())
        if not is_number(value):
            raise Refusal(f"{name} should be a number, but it is {kind_of(value)}")
        return np.asarray(value, dtype=np.float64)
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
    dtypes = dtypes or (want.dtype,)
    if value.dtype not in dtypes:
        against = (
            f"but {like} has dtype {dtypes[0]}" if like else f"but should have dtype {dtypes[0]}"
        )
        keep = " (compute in the input's dtype)" if like and value.dtype.kind == "f" else ""
        raise Refusal(f"{name} has dtype {value.dtype} {against}{keep}")
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
    if exercise.kind == "number" and not is_number(submission):
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


@dataclass(frozen=True)
class _Prepared:
    """A case with the reference's outputs and, for gradients, the finite differences;
    ``float32`` for a case's float32 twin."""

    case: Case
    want: tuple[np.ndarray, ...]
    numeric: dict[str, np.ndarray]
    float32: bool = False


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _attempt(exercise: Exercise, submission: Any, prepared: _Prepared) -> tuple | BaseException:
    """The outputs of ``submission`` on a case, conformed to the reference's, or the error."""
    dtypes = _FLOATS if prepared.float32 else None
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            values = _split(exercise, exercise.run(submission, prepared.case.args))
        return tuple(
            conform(o.name, v, w, o.like, dtypes)
            for o, v, w in zip(exercise.outputs, values, prepared.want)
        )
    except Exception as error:  # a learner's bug of any kind becomes a message
        return error


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


def _reference_outputs(exercise: Exercise, args: Mapping[str, Any]) -> tuple[np.ndarray, ...]:
    values = _split(exercise, exercise.run(exercise.reference, args))
    return tuple(np.asarray(v, dtype=np.float64) for v in values)


@functools.cache
def _prepared(exercise: Exercise) -> tuple[_Prepared, ...]:
    """The exercise's cases, built once, with what every submission is compared to."""
    prepared = []
    for case in exercise.cases():
        for value in [*case.args.values(), *(case.point or {}).values()]:
            read_only(value)
        numeric = {}
        if case.loss is not None:
            for o in exercise.outputs:
                if o.gradient:
                    numeric[o.name] = numeric_gradient(case.loss, case.point, o.like)
        prepared.append(_Prepared(case, _reference_outputs(exercise, case.args), numeric))
    return tuple(prepared)


def _holds_function(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return any(_holds_function(v) for v in value)
    return callable(value)


def _cast(args: Mapping[str, Any], source: type, target: type) -> dict[str, Any]:
    """``args`` with every array of dtype ``source`` as a read-only array of ``target``."""
    return {
        k: read_only(v.astype(target)) if isinstance(v, np.ndarray) and v.dtype == source else v
        for k, v in args.items()
    }


@functools.cache
def _twins(exercise: Exercise) -> tuple[_Prepared, ...]:
    """The float32 twin of every case that has float64 arrays and no functions among its
    arguments (a function's own arrays would stay float64), compared with the reference on
    the rounded values."""
    twins = []
    for p in _prepared(exercise):
        args = p.case.args
        if any(_holds_function(v) for v in args.values()) or not any(
            isinstance(v, np.ndarray) and v.dtype == np.float64 for v in args.values()
        ):
            continue
        rounded = _cast(args, np.float64, np.float32)
        want = _reference_outputs(exercise, _cast(rounded, np.float32, np.float64))
        twins.append(_Prepared(Case(f"{p.case.words}, in float32", rounded), want, {}, True))
    return tuple(twins)


@functools.cache
def _mistake_attempts(exercise: Exercise) -> tuple[tuple[tuple | BaseException, ...], ...]:
    """Each known mistake's outcome on every (float64) case."""
    return tuple(
        tuple(_attempt(exercise, m.submission, p) for p in _prepared(exercise))
        for m in exercise.mistakes
    )


# ----------------------------------------------------------------------- comparing
def _close(
    got: np.ndarray, want: np.ndarray, exercise: Exercise, float32: bool = False
) -> np.ndarray:
    rtol, atol = exercise.rtol, exercise.atol
    if float32:  # rounding grows with the output's size: the tolerance is scaled by it
        rtol, atol = max(rtol, RTOL32), ATOL32 * np.abs(want).max(initial=1.0)
    with np.errstate(all="ignore"):
        return np.isclose(got, want, rtol=rtol, atol=atol, equal_nan=True)


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


def _wrong_outputs(
    exercise: Exercise, cases: tuple[_Prepared, ...], attempts: list[tuple]
) -> dict[str, _Wrong]:
    wrong: dict[str, _Wrong] = {}
    for prepared, got_all in zip(cases, attempts):
        for o, got, want in zip(exercise.outputs, got_all, prepared.want):
            bad = ~_close(got, want, exercise, prepared.float32)
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


def _problem_hint(exercise: Exercise, case_index: int | None, error: BaseException) -> str | None:
    """The hint of a mistake that fails the same way (same exception, same words) on the same
    case (``case_index`` None for a float32 twin, where no mistake is run)."""
    if isinstance(error, ValueError) and "read-only" in str(error):
        return (
            "your function writes into one of its inputs (they are read-only here): "
            "compute into a new array instead (np.zeros_like, x.copy(), a + b)"
        )
    if case_index is None:
        return None
    for mistake, outcome in zip(exercise.mistakes, _mistake_attempts(exercise)):
        failure = outcome[case_index]
        if type(failure) is type(error) and str(failure) == str(error):
            return mistake.hint
    return None


# ----------------------------------------------------------------------- the check
_FLOAT32_HINT = (
    "the float64 cases pass, so look for a step that loses float32's precision (a "
    "difference of nearly equal numbers) or that turns your arrays into another dtype"
)


def _number_words(w: _Wrong) -> tuple[Callable[[float], str], str]:
    """How to print the values of a wrong entry, and what to add after them: a value close
    to the expected one gets the digits that show the difference, and the difference."""
    gap = abs(w.got - w.want)
    relative = gap / abs(w.want) if w.want else math.inf
    if not RTOL < relative < NEAR:
        return _number, ""
    digits = max(6, 2 - math.floor(math.log10(relative)))
    return (lambda v: f"{v:#.{digits}g}"), f" (differs by {gap:.2g}, relative {relative:.2g})"


def _value_words(exercise: Exercise, w: _Wrong) -> str:
    """'at index (0, 1): expected 0.5 (finite differences: 0.5), received 0.25'."""
    if exercise.kind == "number":
        return f"{_number(w.got)} is not the answer"
    number, gap = _number_words(w)
    where = f"at index {w.index}: " if w.index else ""
    numeric = "" if w.numeric is None else f" (finite differences: {number(w.numeric)})"
    return f"{where}expected {number(w.want)}{numeric}, received {number(w.got)}{gap}"


def _run_cases(
    exercise: Exercise, submission: Any, cases: tuple[_Prepared, ...]
) -> list[tuple] | CheckResult:
    """The submission's outputs on every case, or the failure that stopped it."""
    attempts = []
    for i, prepared in enumerate(cases):
        outcome = _attempt(exercise, submission, prepared)
        if isinstance(outcome, NotImplementedError):
            return CheckResult(False, f"{exercise.name}: {NOT_IMPLEMENTED}")
        if isinstance(outcome, BaseException):
            hint = _problem_hint(exercise, None if prepared.float32 else i, outcome)
            message = f"{exercise.name}: {_problem(outcome)}, in case: {prepared.case.words}."
            return CheckResult(False, message + (f"\nHint: {hint}." if hint else ""))
        attempts.append(outcome)
    return attempts


def run_check(exercise: Exercise, submission: Any) -> CheckResult:
    """Check a submission on every case of ``exercise``, then on the float32 twins; never
    raises on a learner's bug.

    A question's stub is Python's ``NotImplemented`` (``answer = NotImplemented``).
    """
    if exercise.kind == "number" and submission is NotImplemented:
        return CheckResult(False, f"{exercise.name}: {NOT_IMPLEMENTED}")
    refusal = _refuse_submission(exercise, submission)
    if refusal:
        return CheckResult(False, f"{exercise.name}: {refusal}.")
    for cases in (_prepared(exercise), _twins(exercise)):
        attempts = _run_cases(exercise, submission, cases)
        if isinstance(attempts, CheckResult):
            return attempts
        wrong = _wrong_outputs(exercise, cases, attempts)
        if wrong:
            return CheckResult(False, _failed(exercise, attempts, wrong, cases[0].float32))
    return CheckResult(True, _passed(exercise))


def _passed(exercise: Exercise) -> str:
    numeric = any(p.numeric for p in _prepared(exercise))
    against = " and with central finite differences" if numeric else ""
    cases = len(_prepared(exercise))
    twins = len(_twins(exercise))
    also = f", and {twins} again in float32" if twins else ""
    what = "the answer agrees" if exercise.kind == "number" else f"all {cases} cases agree"
    return f"{exercise.name}: passed ({what} with the reference{against}{also})."


def _failed(
    exercise: Exercise, attempts: list[tuple], wrong: dict[str, _Wrong], float32: bool
) -> str:
    """One line per wrong output, grouped under the known mistake that explains them (in
    float32, under the float32 hint)."""
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
        hint = (
            _FLOAT32_HINT
            if float32
            else _matching_hint(exercise, attempts, position)
            or f'no common mistake matches; compare your {yours} with describe("{exercise.name}")'
        )
        groups.setdefault(hint, []).append(line)
    lines = [line for hint, group in groups.items() for line in [*group, f"Hint: {hint}."]]
    right = [o.name for o in exercise.outputs if o.name not in wrong]
    if right and exercise.kind != "number":
        lines.append(f"{', '.join(right)} {'is' if len(right) == 1 else 'are'} right.")
    return f"{exercise.name}: " + "\n".join(lines)

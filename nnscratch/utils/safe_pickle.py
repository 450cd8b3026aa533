"""An unpickler that only builds objects from an explicit allowlist, and alters nothing else.

``pickle.load`` on an untrusted file can run arbitrary code, because a pickle may name
any importable callable (``os.system``, ``builtins.eval``) and call it. This unpickler
resolves a global only if ``(module, name)`` is in its allowlist and refuses anything
else with :class:`UnsafePickleError`, before anything is called.

A pickle can also change objects without calling anything: its BUILD opcode sets the
state (``__setstate__``, ``__dict__`` or attributes) of the object below it on the stack.
Aimed at an allowlisted function or class, that would alter it for the rest of the
process. So BUILD is refused on anything the unpickler did not make itself, and on
NumPy dtypes except for the one state NumPy writes for a plain dtype (its byte order).
"""

from __future__ import annotations

import pickle
import types
from collections.abc import Mapping
from typing import IO, Any

import numpy as np

# NumPy's builtin dtypes are shared by the whole process (np.dtype("f8", copy=False)).
_SHARED_DTYPES = frozenset(id(np.dtype(code)) for code in np.typecodes["All"])
# Dtype kinds whose pickled state is just a byte order: bool, integers, floats, complex,
# bytes and str. A datetime's or object dtype's state carries more, and a crafted one can
# crash NumPy or mark plain numbers as object pointers.
_PLAIN_DTYPE_KINDS = "biufcSU"


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """A pickle referred to a global that is not on the allowlist, or tried to alter one."""


class RestrictedUnpickler(pickle._Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` consults ``allowed`` only.

    ``allowed`` maps ``(module, name)`` to the object to return for it, so a caller can
    substitute its own constructors (for example a NumPy stand-in for a torch storage).
    ``source`` names the file in error messages.

    This is the pure-Python unpickler (the C one cannot intercept BUILD). It costs
    per opcode, not per byte: a 30 MB NumPy pickle is a handful of opcodes.
    """

    dispatch = pickle._Unpickler.dispatch.copy()

    def __init__(
        self,
        file: IO[bytes],
        allowed: Mapping[tuple[str, str], Any],
        source: str = "pickle",
        **kwargs: Any,
    ):
        super().__init__(file, **kwargs)
        self._allowed = allowed
        self._source = source
        # Objects handed in rather than made by this unpickler, by id (kept alive here).
        self._foreign: dict[int, Any] = {}

    def find_class(self, module: str, name: str) -> Any:
        try:
            found = self._allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self._source}: refusing to load global {module}.{name}; "
                "only plain array data is allowed in this file"
            ) from None
        self._foreign[id(found)] = found
        return found

    def load_persid(self) -> None:
        super().load_persid()
        self._foreign[id(self.stack[-1])] = self.stack[-1]

    def load_binpersid(self) -> None:
        super().load_binpersid()
        self._foreign[id(self.stack[-1])] = self.stack[-1]

    def load_build(self) -> None:
        """BUILD, only on an object this unpickler made and that cannot be shared."""
        target, state = self.stack[-2], self.stack[-1]
        refusal = _build_refusal(target, state, id(target) in self._foreign)
        if refusal:
            name = getattr(target, "__name__", None)
            what = type(target).__name__ if name is None else f"{type(target).__name__} {name}"
            raise UnsafePickleError(f"{self._source}: refusing BUILD on {what}: {refusal}")
        super().load_build()

    dispatch[pickle.PERSID[0]] = load_persid
    dispatch[pickle.BINPERSID[0]] = load_binpersid
    dispatch[pickle.BUILD[0]] = load_build


def _build_refusal(target: Any, state: Any, foreign: bool) -> str | None:
    """Why BUILD must not set ``state`` on ``target``, or None if it may."""
    if foreign:
        return "the pickle did not create it (it came from the allowlist or a persistent id)"
    if callable(target) or isinstance(target, types.ModuleType):
        return "a pickle may not alter classes, functions or modules"
    if isinstance(target, np.dtype):
        if id(target) in _SHARED_DTYPES:
            return "it is one of NumPy's shared builtin dtypes"
        plain = isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">", "|", "=")
        if target.kind not in _PLAIN_DTYPE_KINDS or not plain:
            return f"only plain NumPy dtype states are allowed, not {state!r} for {target}"
        expected = target.newbyteorder(state[1]).__reduce__()[2]
        if state != expected:
            return f"dtype state {state!r} is not the state NumPy writes for {target}"
    return None

"""An unpickler that only builds objects from an explicit allowlist.

``pickle.load`` on an untrusted file can run arbitrary code, because a pickle may name
any importable callable (``os.system``, ``builtins.eval``) and call it. This unpickler
resolves a global only if ``(module, name)`` is in its allowlist and refuses anything
else with :class:`UnsafePickleError`, before anything is called.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from typing import IO, Any


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """A pickle referred to a global that is not on the allowlist."""


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` consults ``allowed`` only.

    ``allowed`` maps ``(module, name)`` to the object to return for it, so a caller can
    substitute its own constructors (for example a NumPy stand-in for a torch storage).
    ``source`` names the file in error messages.
    """

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

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self._source}: refusing to load global {module}.{name}; "
                "only plain array data is allowed in this file"
            ) from None

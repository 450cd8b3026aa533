"""Your progress: the outcome of your last check of each exercise, kept in a small file.

Every ``exercises.check`` records ``{name: {"passed": bool, "when": ISO time}}`` in a JSON
file (``NNSCRATCH_PROGRESS``, else ``$XDG_STATE_HOME/nnscratch/exercises.json``, else
``~/.local/state/nnscratch/exercises.json``), written atomically; ``nnscratch exercises``
lists it by lesson. A file that is not such a record is ignored with one warning, and a
file that cannot be written never stops a check.
"""

from __future__ import annotations

import datetime
import json
import os
import warnings
from pathlib import Path

from nnscratch.utils.atomic import atomic_write

MAX_BYTES = 1 << 20  # the record of a few dozen exercises is a few kB


def progress_file() -> Path:
    """Where the record lives."""
    if os.environ.get("NNSCRATCH_PROGRESS"):
        return Path(os.environ["NNSCRATCH_PROGRESS"]).expanduser()
    state = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state) / "nnscratch" / "exercises.json"


def load() -> dict[str, dict]:
    """The record: exercise name -> {"passed": bool, "when": str}; {} if there is none yet."""
    path = progress_file()
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ValueError(f"larger than {MAX_BYTES} bytes")
        record = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(record, dict) or not all(
            isinstance(v, dict)
            and isinstance(v.get("passed"), bool)
            and isinstance(v.get("when"), str)
            for v in record.values()
        ):
            raise ValueError("not a record of checks")
        for entry in record.values():
            datetime.datetime.fromisoformat(entry["when"])  # a ValueError if it is no time
        return record
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, UnicodeDecodeError) as error:
        warnings.warn(f"ignoring the progress file {path}: {error}", stacklevel=2)
        return {}


def record(name: str, passed: bool) -> None:
    """Keep the outcome of a check of ``name`` (now); a failed write only warns."""
    entries = load()
    entries[name] = {
        "passed": passed,
        "when": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    path = progress_file()
    try:
        with atomic_write(path, "w") as f:
            json.dump(entries, f, indent=1, sort_keys=True)
    except OSError as error:
        warnings.warn(f"could not keep your progress in {path}: {error}", stacklevel=2)

"""The ``nnscratch`` command: one sub-command per module in this package.

Each module ``nnscratch/cli/<name>.py`` defines ``register(subparsers)``, which adds
its parser and sets ``run=<function(args) -> int>``; arguments that several commands
share live in ``nnscratch/cli/arguments/``. Errors a user can fix (a bad argument, a
missing file) print one line and exit with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from nnscratch.functional.fast.allocator import keep_freed_memory
from nnscratch.functional.fast.workers import num_workers, pinning_enabled
from nnscratch.training.trainer import TrainingDiverged
from nnscratch.utils.safe_pickle import UnsafePickleError

COMMANDS = (
    "train",
    "evaluate",
    "extract",
    "export",
    "summary",
    "bench",
    "gradflow",
    "degradation",
    "lesion",
    "shattered",
    "paths",
    "exercises",
)

# Exceptions that mean "the input (or the machine) cannot do this", reported as one line:
# OSError covers missing and unwritable files, a full disk and a failed download;
# ImportError an optional package that is not installed (safetensors).
USER_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    OSError,
    MemoryError,
    ImportError,
    UnsafePickleError,
)


def one_line(error: BaseException) -> str:
    """The message of a user error, without Python's decorations (quotes, ``[Errno 28]``)."""
    if isinstance(error, KeyError):
        return str(error).strip("'\"")
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    if isinstance(error, MemoryError) and not str(error):
        return "out of memory"
    return " ".join(str(error).split())  # a message never spans lines


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nnscratch",
        description="A from-scratch NumPy ResNet: train, evaluate, inspect and benchmark it.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"nnscratch.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        num_workers()  # a bad NNSCRATCH_NUM_THREADS fails here, before any work
        keep_freed_memory()  # and so does a bad NNSCRATCH_KEEP_FREED_MEMORY
        pinning_enabled()  # or NNSCRATCH_PIN_THREADS
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("nnscratch: interrupted", file=sys.stderr)
        return 130
    except TrainingDiverged as error:
        print(f"nnscratch {args.command}: stopped: {error}", file=sys.stderr)
        return 3
    except USER_ERRORS as error:
        print(f"nnscratch {args.command}: error: {one_line(error)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

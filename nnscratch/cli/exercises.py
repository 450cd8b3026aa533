"""``nnscratch exercises``: your exercises by lesson with the outcome of your last check;
``nnscratch exercises describe NAME``: what to write for one of them."""

from __future__ import annotations

import argparse
import datetime

from nnscratch import exercises
from nnscratch.exercises import progress


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "exercises",
        help="list the checked exercises by lesson, with your progress",
        description="List the checked exercises by lesson, with the outcome of your last check "
        "of each (kept in NNSCRATCH_PROGRESS, else ~/.local/state/nnscratch/exercises.json).",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    describe = actions.add_parser("describe", help="what to write for one exercise")
    describe.add_argument("name", help="the exercise's name, as the list shows it")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.action == "describe":
        print(exercises.describe(args.name))
        return 0
    record = progress.load()
    for lesson, names in exercises.LESSONS.items():
        print(lesson)
        for name in names:
            print(f"  {status(record.get(name)):<24} {name}")
    passed = sum(entry["passed"] for entry in record.values())
    print(
        f"{passed} of {len(exercises.names())} passed at their last check "
        f"(kept in {progress.progress_file()})"
    )
    return 0


def status(entry: dict | None) -> str:
    """'passed 2026-12-07 23:40', 'failed ...' or 'not checked yet'."""
    if entry is None:
        return "not checked yet"
    when = datetime.datetime.fromisoformat(entry["when"]).strftime("%Y-%m-%d %H:%M")
    return f"{'passed' if entry['passed'] else 'failed'} {when}"

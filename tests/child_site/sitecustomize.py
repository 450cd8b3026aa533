"""Loaded at start-up by the children of ``tests/child.py`` (it is put on their PYTHONPATH).

At exit, the child writes its own peak resident memory (``VmHWM`` of /proc/self/status,
in KiB) to the file named by ``NNSCRATCH_TEST_PEAK_FILE``. ``ru_maxrss`` cannot tell
this: Linux counts in it the memory of the forked copy of the parent from before exec,
so a child of a large test runner would seem as large as the runner.
"""

import atexit
import os


def _write_peak() -> None:
    path = os.environ.get("NNSCRATCH_TEST_PEAK_FILE")
    if not path:
        return
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                with open(path, "w") as out:
                    out.write(line.split()[1])
                return


atexit.register(_write_peak)

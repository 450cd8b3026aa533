"""The fast tier keeps freed memory for the next step's arrays: a step touches no new
pages (glibc); NNSCRATCH_KEEP_FREED_MEMORY=0 leaves glibc's defaults, under which it
does."""

import os
import platform
import subprocess
import sys

import pytest
from conftest import TINY_FLAGS

from nnscratch.cli import main
from nnscratch.functional.fast import allocator

# A child that has the layers pick the fast tier, runs two "steps" (arrays of several sizes, all
# freed at the end, as a training step's activations are), and prints how many page
# faults a third step costs: 47 MB of arrays, some 12,000 pages if all were fresh.
CHILD = """
import resource
import numpy as np
from nnscratch.functional.backend import backend
backend()
def step():
    kept = [np.ones(n << 18, dtype=np.float32) for n in (8, 4, 8, 2, 16, 1, 8)]
    del kept
for _ in range(2):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults_of_a_step(setting: str) -> int:
    env = {**os.environ, "NNSCRATCH_KEEP_FREED_MEMORY": setting}
    out = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True
    )
    return int(out.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_a_steps_arrays_reuse_freed_memory_without_page_faults():
    kept, defaults = faults_of_a_step("1"), faults_of_a_step("0")
    assert kept < 100
    assert defaults > 1000  # glibc's defaults: fresh pages every step (2,285 here)


def test_the_setting_is_checked(monkeypatch):
    allocator.keep_freed_memory.cache_clear()  # read again, as in a fresh process
    monkeypatch.setenv("NNSCRATCH_KEEP_FREED_MEMORY", "yes")
    with pytest.raises(ValueError, match="NNSCRATCH_KEEP_FREED_MEMORY must be 0 or 1"):
        allocator.keep_freed_memory()
    monkeypatch.setenv("NNSCRATCH_KEEP_FREED_MEMORY", "0")
    assert allocator.keep_freed_memory() is False


def test_a_bad_setting_is_one_line_before_any_work(capsys, tmp_path, monkeypatch):
    allocator.keep_freed_memory.cache_clear()
    monkeypatch.setenv("NNSCRATCH_KEEP_FREED_MEMORY", "yes")
    assert main(["train", *TINY_FLAGS, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "NNSCRATCH_KEEP_FREED_MEMORY must be 0 or 1, got 'yes'" in err
    assert err.count("\n") == 1 and not (tmp_path / "run").exists()

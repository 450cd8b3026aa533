"""``nnscratch bench``: how fast a training step and inference run, and in how much memory.

For one model, batch and image size it measures, each in fresh worker processes:

- images/s of a full training step (forward, cross-entropy, backward, SGD with
  momentum 0.9 and weight decay 5e-4) and of inference (``eval()`` under
  ``no_grad()``): the median of ``steps`` timed steps after ``warmup`` untimed ones;
- the peak memory of the training step: the peak resident set size (Linux ``VmHWM``,
  reset just before the timed steps) minus the resident size after imports, model,
  optimizer and batch were set up. It counts activations, gradients, momentum
  buffers and scratch space;
- start-up: seconds from the launch of a fresh process to the end of its first
  training step (numba compiles, or loads its cache, during that step), measured in
  two processes one after the other, and the time of a warm step;
- a breakdown of one training step by layer type, from timers that the benchmark
  wraps around each layer's forward and backward (only in its own worker).

With ``--compare-torch`` the same architecture is built in PyTorch from a plain
description of the nnscratch model (no torchvision needed), run with the same number of
threads in its own worker, and timed step by step in alternation with nnscratch, so
both see the same machine load; every figure then has a ratio nnscratch / torch.

Every module of this package imports only the standard library at the top: the parent
process stays light, and the torch worker never imports numba (nor the nnscratch worker
torch).

- :mod:`~nnscratch.bench.config`: :class:`BenchConfig`, what to measure;
- :mod:`~nnscratch.bench.measure`: :func:`benchmark`, the parent that alternates the workers;
- :mod:`~nnscratch.bench.worker`: the worker processes and their JSON-lines protocol;
- :mod:`~nnscratch.bench.nnscratch_runner`: the nnscratch steps and the per-layer breakdown;
- :mod:`~nnscratch.bench.torch_twin`: the PyTorch twin of a model;
- :mod:`~nnscratch.bench.probes`: timings, memory from ``/proc``, thread pools, the machine;
- :mod:`~nnscratch.bench.report`: :func:`format_table`, the result as text.

The command line is ``nnscratch bench`` (:mod:`nnscratch.cli.bench`).
"""

from nnscratch.bench.config import BenchConfig, config_from_args
from nnscratch.bench.measure import benchmark
from nnscratch.bench.nnscratch_runner import CATEGORIES
from nnscratch.bench.report import format_table
from nnscratch.bench.torch_twin import architecture_spec, torch_module

__all__ = [
    "CATEGORIES",
    "BenchConfig",
    "architecture_spec",
    "benchmark",
    "config_from_args",
    "format_table",
    "torch_module",
]

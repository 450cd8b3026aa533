"""The nnscratch side of a benchmark worker: a training step, an inference step, and the
breakdown of a step by layer type."""

from __future__ import annotations

import statistics
import time

from nnscratch.bench.config import BenchConfig
from nnscratch.bench.probes import thread_pools, timed

CATEGORIES = (
    "conv_forward",
    "conv_backward",
    "batch_norm",
    "relu",
    "pooling",
    "linear_loss",
    "optimizer",
    "other",
)


class NnRunner:
    """nnscratch model, SGD, loss and a fixed random batch."""

    def __init__(self, config: BenchConfig):
        import numpy as np

        from nnscratch import models, nn, optim
        from nnscratch.functional.backend import backend

        backend()  # the layers import their tier (numba for the fast one) on first use: do it
        # now, so that the memory baseline after setup holds it, as it holds the rest
        self.np, self.nn = np, nn
        self.config = config
        self.model = models.create(config.model, **config.model_kwargs()).to(config.dtype)
        self.optimizer = optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
        self.criterion = nn.CrossEntropyLoss()
        rng = np.random.default_rng(config.seed)
        shape = (config.batch_size, config.in_channels, config.image_size, config.image_size)
        self.x = rng.standard_normal(shape).astype(config.dtype)
        self.t = rng.integers(0, config.num_classes, config.batch_size)

    def describe(self) -> dict:
        import numba
        import numpy as np

        from nnscratch.functional.fast.workers import num_workers

        info = {
            "framework": "nnscratch",
            "parameters": self.model.num_parameters(),
            "numpy": np.__version__,
            "numba": numba.__version__,
            "numba_threads": numba.config.NUMBA_NUM_THREADS,
            "workers": num_workers(),
        }
        self.infer_step()  # loads the kernels (and BLAS's threads) before looking
        try:
            info["numba_threading_layer"] = numba.threading_layer()
        except ValueError:  # no parallel numba kernel has run: all of ours are serial
            info["numba_threading_layer"] = None
        info["thread_pools"] = thread_pools()
        return info

    def train_step(self) -> float:
        self.model.train()
        self.model.zero_grad()
        loss = self.criterion(self.model(self.x), self.t)
        self.model.backward(self.criterion.backward())
        self.optimizer.step()
        return loss

    def infer_step(self) -> None:
        self.model.eval()
        with self.nn.no_grad():
            self.model(self.x)

    def breakdown(self, steps: int) -> dict:
        """Median seconds per layer type over ``steps`` training steps, with timers wrapped
        around every leaf layer's forward and backward (removed afterwards)."""
        totals = {name: [] for name in (*CATEGORIES, "step")}
        clock: dict[str, float] = {}
        convs = {name: m for name, m in self.model.named_modules() if isinstance(m, self.nn.Conv2d)}
        per_conv = {(name, d): [] for name in convs for d in ("forward", "backward")}
        undo = self._install_timers(clock)
        try:
            for _ in range(steps):
                clock.clear()
                clock.update(dict.fromkeys(CATEGORIES, 0.0))
                clock.update(dict.fromkeys(per_conv, 0.0))
                step = timed(self._timed_train_step(clock))
                measured = sum(clock[c] for c in CATEGORIES if c != "other")
                clock["other"] = step - measured
                for c in (*CATEGORIES, *per_conv):
                    (totals[c] if c in totals else per_conv[c]).append(clock[c])
                totals["step"].append(step)
        finally:
            undo()
        seconds = {c: statistics.median(v) for c, v in totals.items()}
        step = seconds.pop("step")
        return {
            "step_s": step,
            "seconds": seconds,
            "fractions": {c: s / step for c, s in seconds.items()},
            "convolutions": [
                {
                    **self._conv_description(name, module),
                    "forward_s": statistics.median(per_conv[name, "forward"]),
                    "backward_s": statistics.median(per_conv[name, "backward"]),
                }
                for name, module in convs.items()
            ],
            "note": "other = step time minus the timed layers: residual adds, flatten, "
            "zero_grad and Python overhead",
        }

    def _conv_description(self, name: str, conv) -> dict:
        """Name, shape, the path the fast tier takes and the multiply-adds of one convolution."""
        from nnscratch.functional.conv import conv_geometry
        from nnscratch.functional.fast.conv import conv_path

        x_shape = self._conv_inputs[name]
        # a zero-size broadcast view: the geometry needs the shape and dtype, not the data
        x = self.np.broadcast_to(self.np.zeros((), dtype=conv.weight.dtype), x_shape)
        g = conv_geometry("conv2d", x, conv.weight.data, conv.stride, conv.padding)
        return {
            "name": name,
            "input": list(x_shape[1:]),
            "weight": list(conv.weight.shape),
            "stride": g.sh,
            "path": conv_path(x_shape, conv.weight.shape, g),
            "forward_flop": 2 * x_shape[0] * g.H_out * g.W_out * conv.weight.data.size,
        }

    def _timed_train_step(self, clock: dict):
        def step() -> float:
            self.model.train()
            self.model.zero_grad()
            loss = self.criterion(self.model(self.x), self.t)
            self.model.backward(self.criterion.backward())
            start = time.perf_counter()
            self.optimizer.step()
            clock["optimizer"] += time.perf_counter() - start
            return loss

        return step

    def _install_timers(self, clock: dict):
        """Wrap forward/backward of each leaf layer (and the loss) by instance attributes."""
        nn = self.nn
        kinds = [
            (nn.BatchNorm2d, "batch_norm", "batch_norm"),
            (nn.ReLU, "relu", "relu"),
            (nn.MaxPool2d, "pooling", "pooling"),
            (nn.AdaptiveAvgPool2d, "pooling", "pooling"),
            (nn.Linear, "linear_loss", "linear_loss"),
            (nn.CrossEntropyLoss, "linear_loss", "linear_loss"),
        ]
        wrapped = []
        names = {id(m): name for name, m in self.model.named_modules()}
        self._conv_inputs = {}
        for module in [*self.model.modules(), self.criterion]:
            if isinstance(module, nn.Conv2d):  # each convolution's own time and input shape
                name = names[id(module)]
                forward = _noting_input(module.forward, name, self._conv_inputs)
                forward = _timer(forward, (name, "forward"), clock)
                backward = _timer(module.backward, (name, "backward"), clock)
                module.__dict__["forward"] = _timer(forward, "conv_forward", clock)
                module.__dict__["backward"] = _timer(backward, "conv_backward", clock)
                wrapped.append(module)
                continue
            for cls, forward_kind, backward_kind in kinds:
                if isinstance(module, cls):
                    for method, kind in (("forward", forward_kind), ("backward", backward_kind)):
                        original = getattr(module, method)
                        module.__dict__[method] = _timer(original, kind, clock)
                    wrapped.append(module)
                    break

        def undo() -> None:
            for module in wrapped:
                module.__dict__.pop("forward", None)
                module.__dict__.pop("backward", None)

        return undo


def _timer(function, kind: str, clock: dict):
    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            clock[kind] += time.perf_counter() - start

    return timed


def _noting_input(forward, name: str, inputs: dict):
    """``forward`` that notes the shape of its input under ``name``."""

    def noted(x, *args, **kwargs):
        inputs[name] = x.shape
        return forward(x, *args, **kwargs)

    return noted

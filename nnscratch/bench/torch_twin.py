"""The PyTorch twin of an nnscratch model, built from a plain description of it (no
torchvision needed), and the torch side of a benchmark worker."""

from __future__ import annotations

from nnscratch.bench.config import BenchConfig
from nnscratch.bench.probes import thread_pools


# ----------------------------------------------------------------------- architecture
def architecture_spec(model) -> dict:
    """A plain-data (JSON) description of an nnscratch model, from which
    :func:`torch_module` builds its PyTorch twin, layer for layer in the same order."""
    return _spec(model)


def _spec(m) -> dict:
    from nnscratch import nn
    from nnscratch.models.classifier import ImageClassifier

    if isinstance(m, ImageClassifier):
        return {
            "type": "Sequential",
            "children": [_spec(s) for s in (*m.backbone(), m.flatten, m.fc)],
        }
    if isinstance(m, nn.ResidualBlock):
        return {
            "type": "Residual",
            "shared": [_spec(layer) for layer in m.shared_path()],
            "main": [_spec(layer) for layer in m.main_path()],
            "shortcut": _spec(m.downsample) if m.residual and m.downsample is not None else None,
            "residual": m.residual,
            "after_add": _spec(m.after_add),
        }
    if isinstance(m, nn.Conv2d):
        return {
            "type": "Conv2d",
            "in_channels": m.in_channels,
            "out_channels": m.out_channels,
            "kernel_size": list(m.kernel_size),
            "stride": list(m.stride),
            "padding": list(m.padding),
            "bias": m.bias is not None,
        }
    if isinstance(m, nn.BatchNorm2d):
        return {
            "type": "BatchNorm2d",
            "num_features": m.num_features,
            "eps": m.eps,
            "momentum": m.momentum,
        }
    if isinstance(m, nn.MaxPool2d):
        return {
            "type": "MaxPool2d",
            "kernel_size": list(m.kernel_size),
            "stride": list(m.stride),
            "padding": list(m.padding),
        }
    if isinstance(m, nn.Linear):
        return {
            "type": "Linear",
            "in_features": m.in_features,
            "out_features": m.out_features,
            "bias": m.bias is not None,
        }
    if isinstance(m, nn.ZeroPadShortcut):
        return {
            "type": "ZeroPadShortcut",
            "in_channels": m.in_channels,
            "out_channels": m.out_channels,
            "stride": m.stride,
        }
    if isinstance(m, nn.Sequential):
        return {"type": "Sequential", "children": [_spec(c) for c in m]}
    for cls in (nn.ReLU, nn.Identity, nn.Flatten, nn.AdaptiveAvgPool2d):
        if isinstance(m, cls):
            return {"type": cls.__name__}
    raise TypeError(f"bench: no PyTorch counterpart for {type(m).__name__}")


def torch_module(spec: dict):
    """Build a torch.nn.Module from :func:`architecture_spec`'s description.

    Mirrors torchvision's ResNet: ReLU(inplace=True), and ``out += identity`` in blocks.
    """
    from torch import nn as tnn

    class Residual(tnn.Module):
        def __init__(self, shared, main, shortcut, residual: bool, after_add):
            super().__init__()
            self.shared, self.main, self.shortcut = shared, main, shortcut
            self.residual, self.after_add = residual, after_add

        def forward(self, x):
            h = self.shared(x)
            out = self.main(h)
            if self.residual:
                out += h if self.shortcut is None else self.shortcut(h)
            return self.after_add(out)

    class ZeroPadShortcut(tnn.Module):
        def __init__(self, in_channels: int, out_channels: int, stride: int):
            super().__init__()
            self.extra, self.stride = out_channels - in_channels, stride

        def forward(self, x):
            kept = x[:, :, :: self.stride, :: self.stride]
            return tnn.functional.pad(kept, (0, 0, 0, 0, 0, self.extra))

    def build(s: dict):
        t = s["type"]
        if t == "Sequential":
            return tnn.Sequential(*[build(c) for c in s["children"]])
        if t == "Residual":
            shortcut = build(s["shortcut"]) if s["shortcut"] is not None else None
            return Residual(
                tnn.Sequential(*[build(c) for c in s["shared"]]),
                tnn.Sequential(*[build(c) for c in s["main"]]),
                shortcut,
                s["residual"],
                build(s["after_add"]),
            )
        if t == "Conv2d":
            return tnn.Conv2d(
                s["in_channels"],
                s["out_channels"],
                tuple(s["kernel_size"]),
                tuple(s["stride"]),
                tuple(s["padding"]),
                bias=s["bias"],
            )
        if t == "BatchNorm2d":
            return tnn.BatchNorm2d(s["num_features"], eps=s["eps"], momentum=s["momentum"])
        if t == "MaxPool2d":
            return tnn.MaxPool2d(tuple(s["kernel_size"]), tuple(s["stride"]), tuple(s["padding"]))
        if t == "Linear":
            return tnn.Linear(s["in_features"], s["out_features"], bias=s["bias"])
        if t == "ZeroPadShortcut":
            return ZeroPadShortcut(s["in_channels"], s["out_channels"], s["stride"])
        if t == "ReLU":
            return tnn.ReLU(inplace=True)
        if t == "Identity":
            return tnn.Identity()
        if t == "Flatten":
            return tnn.Flatten()
        if t == "AdaptiveAvgPool2d":
            return tnn.AdaptiveAvgPool2d(1)
        raise ValueError(f"unknown layer type {t!r}")

    return build(spec)


class TorchRunner:
    """The same architecture in PyTorch, SGD with the same settings, a fixed random batch."""

    def __init__(self, config: BenchConfig, message: dict):
        import torch

        torch.set_num_threads(int(message["threads"]))
        torch.manual_seed(config.seed)
        self.torch = torch
        dtype = getattr(torch, config.dtype)
        self.model = torch_module(message["spec"]).to(dtype)
        self.optimizer = torch.optim.SGD(
            self.model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4
        )
        g = torch.Generator().manual_seed(config.seed)
        shape = (config.batch_size, config.in_channels, config.image_size, config.image_size)
        self.x = torch.randn(shape, generator=g, dtype=dtype)
        self.t = torch.randint(0, config.num_classes, (config.batch_size,), generator=g)

    def describe(self) -> dict:
        torch = self.torch
        info = {
            "framework": "torch",
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
        }
        self.infer_step()
        info["thread_pools"] = thread_pools()
        return info

    def train_step(self) -> None:
        self.model.train()
        self.optimizer.zero_grad()
        loss = self.torch.nn.functional.cross_entropy(self.model(self.x), self.t)
        loss.backward()
        self.optimizer.step()

    def infer_step(self) -> None:
        self.model.eval()
        with self.torch.no_grad():
            self.model(self.x)

    def breakdown(self, steps: int) -> dict:
        raise ValueError("the breakdown is measured for nnscratch only")

"""What every residual block shares: the shortcut, and the `+` that backward turns into a fan-out.

Forward:   out = relu(main(x) + shortcut(x))
Backward:  d = relu'(...) * dy feeds *both* branches unchanged, and
           dx = main.backward(d) + shortcut.backward(d)
A plain block (``residual=False``) has no shortcut: out = relu(main(x)).
"""

from __future__ import annotations

import numpy as np

from nnscratch.nn.module import Module
from nnscratch.nn.shortcut import ZeroPadShortcut, projection
from nnscratch.utils.frobenius_norm import frobenius_norm

SHORTCUTS = ("projection", "zero_pad")


class ResidualBlock(Module):
    """Base of BasicBlock and Bottleneck: subclasses build the layers and list the main path.

    With ``record_grad_ledger = True``, each backward stores in ``grad_ledger`` the
    Frobenius norms of the two parts of the input gradient,
    ``{"main": |dx_main|, "shortcut": |dx_shortcut|, "total": |dx|}``.
    """

    expansion = 1

    def build_shortcut(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        residual: bool,
        batch_norm: bool,
        shortcut: str,
        rng: np.random.Generator,
    ) -> None:
        """Set ``downsample`` (None for the identity) and ``residual``."""
        if shortcut not in SHORTCUTS:
            raise ValueError(f"unknown shortcut {shortcut!r}; choose one of {', '.join(SHORTCUTS)}")
        self.residual = residual
        self.record_grad_ledger = False
        self.grad_ledger = None
        if not residual or (stride == 1 and in_channels == out_channels):
            self.downsample = None
        elif shortcut == "projection":
            self.downsample = projection(in_channels, out_channels, stride, batch_norm, rng)
        else:
            self.downsample = ZeroPadShortcut(in_channels, out_channels, stride)

    def main_path(self) -> list[Module]:
        """The layers of the residual branch, in forward order (without ``relu_after_add``)."""
        raise NotImplementedError

    def last_norm(self) -> Module:
        """The norm that ends the branch (zeroed by ``zero_init_residual``)."""
        raise NotImplementedError

    @property
    def relu_after_add(self) -> Module:
        """The ReLU applied to main(x) + shortcut(x) (in a plain block, to main(x) alone)."""
        raise NotImplementedError

    def forward(self, x: np.ndarray) -> np.ndarray:
        out = x
        for layer in self.main_path():
            out = layer(out)
        if self.residual:
            out = out + (self.downsample(x) if self.downsample is not None else x)
        return self.relu_after_add(out)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        d = self.relu_after_add.backward(dy)  # gradient at the output of the `+`
        dx_main = d
        for layer in reversed(self.main_path()):
            dx_main = layer.backward(dx_main)
        if not self.residual:
            dx_shortcut, dx = None, dx_main
        else:  # the `+` fans the same d out to both branches; their gradients add up
            dx_shortcut = self.downsample.backward(d) if self.downsample is not None else d
            dx = dx_main + dx_shortcut
        if self.record_grad_ledger:
            self.grad_ledger = {
                "main": frobenius_norm(dx_main),
                "shortcut": 0.0 if dx_shortcut is None else frobenius_norm(dx_shortcut),
                "total": frobenius_norm(dx),
            }
        return dx

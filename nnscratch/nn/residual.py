"""What every residual block shares: the shortcut, and the `+` that backward turns into a fan-out.

Forward:   h   = shared(x)                        (nothing, except in a pre-activation block
                                                   whose shortcut changes shape: its BN-ReLU)
           out = after_add(main(h) + shortcut(h))  (after_add: ReLU, or nothing when pre-activated)
                                                  (in inference, main's last conv -> BN, the
                                                   + and the ReLU run as one op: nn.fusion)
Backward:  d = after_add'(...) * dy feeds *both* branches unchanged, and
           dh = main.backward(d) + shortcut.backward(d),   dx = shared.backward(dh)
           (the first two lines: the backend's ``residual_backward``, which the learner's
           own tier may replace)
A plain block (``residual=False``) has no shortcut: out = after_add(main(x)).
"""

from __future__ import annotations

import numpy as np

from nnscratch.functional.backend import backend
from nnscratch.nn.activation import ReLU
from nnscratch.nn.fusion import sequence
from nnscratch.nn.module import Module
from nnscratch.nn.shortcut import ZeroPadShortcut, projection
from nnscratch.utils.frobenius_norm import frobenius_norm

SHORTCUTS = ("projection", "zero_pad")
ROUTES = (None, "main", "shortcut")


class ResidualBlock(Module):
    """Base of the original and the pre-activation blocks: subclasses build the layers and list them.

    With ``record_grad_ledger = True``, each backward stores in ``grad_ledger`` the
    Frobenius norms of the gradient arriving from above and of the parts of the input
    gradient, ``{"above": |dy|, "main": |dh_main|, "shortcut": |dh_shortcut|, "total": |dx|}``.
    In an identity block that ends at the `+` (pre-activation), shortcut equals above.
    ``route = "main"`` or ``"shortcut"`` sends the backward through that side only (one
    path of the unrolled net, for :mod:`nnscratch.experiments.paths`); ``None``, both.
    """

    expansion = 1
    pre_activation = False

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
        """Set ``downsample`` (None for the identity), ``residual`` and the ledger and route."""
        if shortcut not in SHORTCUTS:
            raise ValueError(f"unknown shortcut {shortcut!r}; choose one of {', '.join(SHORTCUTS)}")
        self.residual = residual
        self.record_grad_ledger = False
        self.grad_ledger = None
        self.route = None
        if not residual or (stride == 1 and in_channels == out_channels):
            self.downsample = None
        elif shortcut == "projection":
            self.downsample = projection(
                in_channels,
                out_channels,
                stride,
                batch_norm,
                rng,
                pre_activation=self.pre_activation,
            )
        else:
            self.downsample = ZeroPadShortcut(in_channels, out_channels, stride)

    def shared_path(self) -> list[Module]:
        """Layers applied to x before it splits into the branch and the shortcut (often none)."""
        return []

    def main_path(self) -> list[Module]:
        """The layers of the residual branch, in forward order (after ``shared_path``)."""
        raise NotImplementedError

    @property
    def after_add(self) -> Module:
        """What is applied to main(h) + shortcut(h): a ReLU, or an Identity when pre-activated."""
        raise NotImplementedError

    def zero_init_branch(self) -> None:
        """Make the branch start at zero, so the block starts as its shortcut (``zero_init_residual``)."""
        raise NotImplementedError

    def branch_backward(self, d: np.ndarray) -> np.ndarray:
        """Back through the branch's layers, from the `+` to h."""
        for layer in reversed(self.main_path()):
            d = layer.backward(d)
        return d

    def shortcut_backward(self, d: np.ndarray) -> np.ndarray:
        """Back through the shortcut, from the `+` to h (the identity passes d unchanged)."""
        return self.downsample.backward(d) if self.downsample is not None else d

    def forward(self, x: np.ndarray) -> np.ndarray:
        h = sequence(self.shared_path(), x)
        if not self.residual:
            return sequence(self.main_path(), h, then=self.after_add)
        shortcut = self.downsample(h) if self.downsample is not None else h
        return sequence(self.main_path(), h, plus=shortcut, then=self.after_add)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self.residual:  # the `+` fans d out to both sides; their gradients add
            main, shortcut = self._sides()
            if isinstance(self.after_add, ReLU):  # out = relu(...): its cache is out
                dh = backend().residual_backward(dy, self.after_add.pop_cache(), main, shortcut)
            else:  # nothing after the `+` (pre-activation), or another activation swapped in
                dh = backend().residual_backward(self.after_add.backward(dy), None, main, shortcut)
        else:
            dh = self._sides()[0](self.after_add.backward(dy))
        dx = dh
        for layer in reversed(self.shared_path()):
            dx = layer.backward(dx)
        if self.record_grad_ledger:
            self.grad_ledger = {
                "above": frobenius_norm(dy),
                **self._parts,
                "total": frobenius_norm(dx),
            }
        return dx

    def _sides(self):
        """The branch's and the shortcut's backward as the `+` calls them: ``route`` silences
        one side (its gradient is 0); with the ledger on, each keeps its gradient's norm."""
        if self.route not in ROUTES:
            raise ValueError(f"unknown route {self.route!r}; choose one of {ROUTES}")
        self._parts = {"main": 0.0, "shortcut": 0.0}

        def side(name, backward):
            def run(d):
                if self.residual and self.route not in (None, name):
                    return 0.0
                grad = backward(d)
                if self.record_grad_ledger:
                    self._parts[name] = frobenius_norm(grad)
                return grad

            return run

        return side("main", self.branch_backward), side("shortcut", self.shortcut_backward)

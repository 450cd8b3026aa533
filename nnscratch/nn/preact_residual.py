"""What the pre-activation blocks share (He et al. 2016, "Identity Mappings in Deep Residual Networks").

    out = x + branch(relu(bn1(x)))        (nothing after the `+`)

The shortcut is a pure identity, so x_L = x_l + sum of the branches between l and L and
the gradient arriving from above reaches every block's input unchanged, plus the
branches' parts. bn1-relu1 open the branch; they are *shared* (applied to x before the
split, so the shortcut sees relu(bn1(x)) too) when the shortcut changes shape, and in
the first block of a net, which follows a lone convolution, as He et al. do.
"""

from __future__ import annotations

from nnscratch.nn.activation import ReLU
from nnscratch.nn.batch_norm import BatchNorm2d
from nnscratch.nn.container import Identity
from nnscratch.nn.module import Module
from nnscratch.nn.residual import ResidualBlock


class PreActResidualBlock(ResidualBlock):
    """Base of PreActBasicBlock and PreActBottleneck: subclasses list ``branch_layers``."""

    pre_activation = True

    def build_pre_activation(
        self, in_channels: int, batch_norm: bool, shared_activation: bool
    ) -> None:
        """bn1, relu1 and the empty ``after_add`` (call first: state dicts list keys in forward order)."""
        self.bn1 = BatchNorm2d(in_channels) if batch_norm else Identity()
        self.relu1 = ReLU()
        self.add = Identity()
        self.shared_activation = shared_activation

    def branch_layers(self) -> list[Module]:
        """The branch after bn1-relu1, in forward order; it ends in a convolution."""
        raise NotImplementedError

    def shares_activation(self) -> bool:
        return self.shared_activation or self.downsample is not None

    def shared_path(self) -> list[Module]:
        return [self.bn1, self.relu1] if self.shares_activation() else []

    def main_path(self) -> list[Module]:
        first = [] if self.shares_activation() else [self.bn1, self.relu1]
        return [*first, *self.branch_layers()]

    @property
    def after_add(self) -> Identity:
        return self.add

    def zero_init_branch(self) -> None:
        """Zero the branch's last convolution, weight and bias (it ends in a convolution)."""
        last = self.branch_layers()[-1]
        last.weight.data[...] = 0
        if last.bias is not None:
            last.bias.data[...] = 0

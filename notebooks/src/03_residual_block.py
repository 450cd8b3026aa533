# Source of notebooks/03_residual_block.ipynb (build and run: python notebooks/run_notebooks.py).

# %% [markdown]
# # 03 · The residual block
#
# **What you will learn**
#
# - what a `BasicBlock` computes: `out = relu(main(x) + shortcut(x))`;
# - that in backward the `+` becomes a **fan-out**: the same gradient goes into both branches,
#   and the two input gradients are **summed** (`dx = dx_main + dx_shortcut`);
# - what goes wrong when the sum is forgotten, and how a gradient check catches it;
# - the shortcut types: identity, projection (1×1 conv + BN) and zero-padding ("option A"),
#   the plain twin without a shortcut, and the bottleneck block;
# - the gradient ledger: how large each of the two parts of `dx` is.
#
# Read beside it: `nnscratch/nn/residual.py` (the fan-out is in `backward`),
# `nnscratch/nn/basic_block.py`, `nnscratch/nn/shortcut.py`.

# %%
import os
import warnings

import numpy as np

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm, without ipywidgets
from nnscratch import exercises, nn
from nnscratch import functional as F
from nnscratch.gradcheck import check_module
from nnscratch.plot.figure import new_figure

%matplotlib inline

FAST = os.environ.get("NNSCRATCH_FAST") == "1"  # CI sets this: smaller sizes, same steps
rng = np.random.default_rng(0)
print("fast mode" if FAST else "full mode")

# %% [markdown]
# ## 1. Forward
#
# $$\text{out} = \mathrm{relu}\big(\underbrace{\mathrm{bn}_2(\mathrm{conv}_2(\mathrm{relu}(\mathrm{bn}_1(\mathrm{conv}_1(x)))))}_{\text{main branch}} + \underbrace{x}_{\text{shortcut}}\big)$$
#
# Both convs are 3×3 with padding 1. When input and output shapes are equal the shortcut is
# the identity. We redo the forward pass with the functional ops and the block's own
# parameters, keeping every intermediate (the input is non-negative, as it would be after the
# previous block's ReLU):

# %%
block = nn.BasicBlock(8, 8, rng=rng).to(np.float64)
x = np.abs(rng.standard_normal((4, 8, 6, 6)))  # (N, C, H, W)


def bn_forward(z, bn):  # training mode, on copies of the running statistics
    return F.batch_norm2d_forward(z, bn.weight.data, bn.bias.data, bn.running_mean.copy(),
                                  bn.running_var.copy(), training=True)


z1, c_conv1 = F.conv2d_forward(x, block.conv1.weight.data, padding=1)
u1, c_bn1 = bn_forward(z1, block.bn1)
h1, c_relu1 = F.relu_forward(u1)
z2, c_conv2 = F.conv2d_forward(h1, block.conv2.weight.data, padding=1)
u2, c_bn2 = bn_forward(z2, block.bn2)
s = u2 + x  # the +
out, c_relu2 = F.relu_forward(s)

print(f"max |ours - block(x)| = {np.abs(out - block(x)).max():.1e}")

# %% [markdown]
# ## 2. Backward: the `+` becomes a fan-out
#
# `s = u2 + x` has `∂s/∂u2 = 1` and `∂s/∂x = 1`: the gradient at the `+`, `ds`, goes unchanged
# into the main branch **and** into the shortcut. `x` is used twice (by `conv1` and by the `+`),
# so its gradient is the sum of the two contributions.
#
# **Your turn.** Write the block's backward, `residual_backward(dy, out, main_backward,
# shortcut_backward) -> dx`: the ReLU after the `+` first, then the fan-out and the sum. The
# check hands you the two branches' backward passes as functions (each takes the gradient at
# the `+` and returns its branch's `dx`), runs your function on identity and projection
# shortcuts, and compares `dx` with the library and with finite differences. It recognises the
# classic mistakes (only one branch, the ReLU's mask on one branch only, an average instead of
# a sum) and names them.

# %%
# exercise: residual_backward
def residual_backward(dy, out, main_backward, shortcut_backward):
    raise NotImplementedError  # ds = dy where out > 0; then both branches get ds; add their dx

# %%
exercises.check("residual_backward", residual_backward)

# %% [markdown]
# The library's `BasicBlock.backward` (`nnscratch/nn/residual.py`, two lines for the `+`) does the
# same, and on the way fills every layer's parameter gradients:

# %%
dy = rng.standard_normal(out.shape)
block.zero_grad()
dx_lib = block.backward(dy)
print("dx", dx_lib.shape, "| parameter gradients filled in:",
      ", ".join(n for n, p in block.named_parameters() if p.grad.any()))

# %% [markdown]
# The same `ds` array feeds both branches, so no layer may write into its upstream gradient in
# place: a ReLU that masked `ds` in place would silently change the shortcut's share. The
# library's blocks accept a read-only `dy`:

# %%
dy_read_only = dy.copy()
dy_read_only.setflags(write=False)
block(x)
print(f"read-only dy works, same dx: max diff {np.abs(block.backward(dy_read_only) - dx_lib).max():.1e}")

# %% [markdown]
# ## 3. A gradient check catches a forgotten sum
#
# A block whose backward returns only the main branch's gradient (the classic "assign instead of
# accumulate" at a fork). Its *parameter* gradients are all right; only `dx` is wrong, so the bug
# would show up one block earlier, in gradients that look perfectly plausible:

# %%
class ForgetsTheShortcut(nn.BasicBlock):
    def backward(self, dy):
        d = self.relu2.backward(dy)
        for layer in reversed(self.main_path()):
            d = layer.backward(d)
        return d  # bug: + dx_shortcut is missing


broken = ForgetsTheShortcut(8, 8, rng=np.random.default_rng(1)).to(np.float64)
for key, err in check_module(broken, x, raise_on_failure=False).items():
    print(f"{key:13s} relative error {err:.1e}{'   <- wrong' if err > 1e-6 else ''}")

# %% [markdown]
# ## 4. Shortcut types, the plain twin and the bottleneck
#
# When a block halves the resolution (stride 2) and changes the width, `x` no longer has the
# output's shape and the shortcut must map it:
#
# - **projection** (torchvision's `downsample`, "option B"): a 1×1 conv with stride 2, then BN;
# - **zero-pad** (`ZeroPadShortcut`, "option A", He et al.'s CIFAR ResNets): keep every second
#   pixel and append zero channels. It has no parameters, so the residual net and its plain twin
#   have the same parameter count.
#
# The **plain twin** (`residual=False`) has the same layers and no shortcut at all. The
# **bottleneck** (ResNet-50 and up) is 1×1 → 3×3 → 1×1 with 4× wider output. Every variant
# passes the gradient check:

# %%
cases = {
    "identity 8->8": (nn.BasicBlock(8, 8, rng=rng), 8),
    "projection 8->16, /2": (nn.BasicBlock(8, 16, 2, shortcut="projection", rng=rng), 8),
    "zero-pad 8->16, /2": (nn.BasicBlock(8, 16, 2, shortcut="zero_pad", rng=rng), 8),
    "plain twin 8->16, /2": (nn.BasicBlock(8, 16, 2, residual=False, rng=rng), 8),
    "bottleneck 16->16, /2": (nn.Bottleneck(16, 4, 2, rng=rng), 16),
}
max_entries = 30 if FAST else None  # fast mode checks a random sample of each tensor's entries
print(f"{'block':24s}{'output shape':>18s}{'params':>8s}{'shortcut params':>17s}{'worst rel. error':>18s}")
for name, (module, channels) in cases.items():
    module.to(np.float64)
    xi = np.abs(rng.standard_normal((3, channels, 6, 6)))
    errors = check_module(module, xi, max_entries=max_entries)
    shortcut = module.downsample.num_parameters() if getattr(module, "downsample", None) else 0
    print(f"{name:24s}{str(module(xi).shape):>18s}{module.num_parameters():>8d}{shortcut:>17d}"
          f"{max(errors.values()):>18.1e}")

# %% [markdown]
# **Your turn: count before you print.** How many trainable parameters does `BasicBlock(64, 64)`
# have (identity shortcut, two 3×3 convolutions without bias, two batch norms)? Work it out with
# the formula, put the number in the cell below, and check it.

# %%
# exercise: basic_block_params
answer = NotImplemented  # your count, a number

# %%
exercises.check("basic_block_params", answer)

# %% [markdown]
# ## 5. The gradient ledger
#
# With `record_grad_ledger = True` a block keeps, after each backward, the norms of the two parts
# of its input gradient: `|dx_main|`, `|dx_shortcut|` and `|dx|`. For our identity block the
# shortcut's part is the gradient at the `+` itself, `ds` (dy through the ReLU after the `+`), and
# the main branch's is the rest of `dx`:

# %%
block.record_grad_ledger = True
block(x)
dx_lib = block.backward(dy)
ds = np.where(out > 0, dy, 0.0)  # the gradient at the +
print({k: round(v, 6) for k, v in block.grad_ledger.items()})
print({"main": round(float(np.linalg.norm(dx_lib - ds)), 6), "shortcut": round(float(np.linalg.norm(ds)), 6),
       "total": round(float(np.linalg.norm(dx_lib)), 6)})

# %% [markdown]
# A picture of the two parts for the **zero-pad** block (8 → 16 channels, stride 2), one input
# channel: the shortcut only copied every second pixel of the first 8 channels, so its gradient
# lands on those pixels only (and is 0 where the output ReLU was off), while the main branch's
# 3×3 convs spread theirs over every pixel.

# %%
zp = nn.BasicBlock(8, 16, 2, shortcut="zero_pad", rng=np.random.default_rng(2)).to(np.float64)
xz = np.abs(rng.standard_normal((2, 8, 12, 12)))
yz = zp(xz)
dyz = rng.standard_normal(yz.shape)
d = zp.relu2.backward(dyz)  # gradient at the +; then each branch in turn
dx_main_z = d
for layer in reversed(zp.main_path()):
    dx_main_z = layer.backward(dx_main_z)
dx_shortcut_z = zp.downsample.backward(d)

fig, axs = new_figure(11, 3.5, ncols=3)
lim = max(np.abs(dx_main_z[0, 0]).max(), np.abs(dx_shortcut_z[0, 0]).max())
for ax, img, title in [(axs[0], dx_main_z[0, 0], "dx_main"), (axs[1], dx_shortcut_z[0, 0], "dx_shortcut (zero-pad)"),
                       (axs[2], dx_main_z[0, 0] + dx_shortcut_z[0, 0], "dx = dx_main + dx_shortcut")]:
    im = ax.imshow(img, cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set_title(title, fontsize=10)
    ax.axis("off")
fig.colorbar(im, ax=list(axs), shrink=0.8)
fig

# %% [markdown]
# ## Exercises
#
# 1. Stage the backward of the projection block (`downsample` is a 1×1 conv with stride 2, then
#    batch norm) and compare `dx` with `BasicBlock(8, 16, 2).backward`.
# 2. Checked: the parameter count of `BasicBlock(64, 64)`, by formula, in the cell below
#    (`exercises.check("basic_block_params", answer)`; the check says whether it is right, and
#    recognises a forgotten batch norm or counted conv biases). Then count `BasicBlock(64, 128, 2)`
#    with each shortcut and compare with `num_parameters()`.
# 3. Set `block.bn2.weight.data[:] = 0` (what `zero_init_residual=True` does). Show that the
#    block then maps a non-negative `x` to itself, and read the ledger: what is `|dx_main|`?
# 4. Stage the forward and backward of a `Bottleneck` with the identity shortcut.
# 5. Break the block differently: let the ReLU backward write its mask into `dy` in place. Which
#    gradients does the check flag now?

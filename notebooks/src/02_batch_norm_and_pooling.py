# Source of notebooks/02_batch_norm_and_pooling.ipynb (build and run: python notebooks/run_notebooks.py).

# %% [markdown]
# # 02 · Batch norm and pooling
#
# **What you will learn**
#
# - batch norm's forward pass in training mode, per channel over `(N, H, W)`;
# - its backward pass staged in reverse (`dxhat`, `dinv_std`, `dvar`, `dmu`), and the compact
#   formula the library uses;
# - why a gradient check needs a *random* upstream gradient (a uniform one makes batch norm's
#   `dx` zero, up to rounding);
# - running statistics and evaluation mode, as PyTorch defines them;
# - max pooling (the gradient goes to the window's winner) and global average pooling.
#
# Read beside it: `nnscratch/functional/batch_norm.py` and `nnscratch/functional/pooling.py`
# (the readable ops this lesson stages; the layers run their fast twins in
# `nnscratch/functional/fast/`, tested equal to them).

# %%
import os
import warnings

import numpy as np

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm, without ipywidgets
from nnscratch import data, exercises, nn
from nnscratch import functional as F
from nnscratch.gradcheck import check_op
from nnscratch.plot.figure import new_figure

%matplotlib inline

FAST = os.environ.get("NNSCRATCH_FAST") == "1"  # CI sets this: smaller sizes, same steps
rng = np.random.default_rng(0)
print("fast mode" if FAST else "full mode")

# %% [markdown]
# ## 1. Batch norm, forward
#
# For each channel `c`, over the `M = N·H·W` values of the batch:
#
# $$\mu = \frac{1}{M}\sum x,\qquad \sigma^2 = \frac{1}{M}\sum (x-\mu)^2,\qquad
# \hat x = \frac{x-\mu}{\sqrt{\sigma^2+\epsilon}},\qquad y = \gamma\,\hat x + \beta$$
#
# (the biased variance, and `eps = 1e-5`, as in PyTorch). We stage it with numpy on a small
# batch whose channels have different means and scales, and compare with the library.

# %%
N, C, H, W = 4, 3, 5, 5
x = rng.standard_normal((N, C, H, W)) * np.array([1.0, 3.0, 0.2])[:, None, None] + np.array([0.0, 5.0, -2.0])[:, None, None]
gamma = rng.uniform(0.5, 1.5, C)
beta = rng.standard_normal(C)
eps = 1e-5
axes = (0, 2, 3)  # everything but the channel
M = N * H * W

mu = x.mean(axis=axes, keepdims=True)  # (1, C, 1, 1)
xc = x - mu
var = (xc**2).mean(axis=axes, keepdims=True)  # biased
inv_std = 1.0 / np.sqrt(var + eps)
xhat = xc * inv_std
G, B = gamma[None, :, None, None], beta[None, :, None, None]
y = G * xhat + B

y_lib, cache = F.batch_norm2d_forward(x, gamma, beta, np.zeros(C), np.ones(C), training=True)
print("per-channel mean of y:", y.mean(axis=axes).round(6), " (= beta:", beta.round(6), ")")
print(f"max |ours - library| = {np.abs(y - y_lib).max():.1e}")

# %% [markdown]
# ## 2. Backward, staged in reverse
#
# Each forward line gets its backward line, in reverse order, with `d`-prefixed names. Note
# the two paths from `x` to the loss besides the direct one: through `mu` and through `var`.
#
# **Your turn.** Write `batch_norm_backward(dy, x, gamma, eps) -> (dx, dgamma, dbeta)` the
# staged way: recompute `mu`, `xc`, `var`, `inv_std`, `xhat` from `x`, then one backward line per
# forward line, in reverse. The check compares `dx`, `dgamma` and `dbeta` with the library and
# with finite differences, and recognises the classic mistakes (the mean and the variance
# treated as constants, one of the two paths forgotten).

# %%
# exercise: batch_norm_backward
def batch_norm_backward(dy, x, gamma, eps):
    raise NotImplementedError  # dbeta, dgamma, dxhat, dinv_std, dxc, dvar, dmu, dx

# %%
exercises.check("batch_norm_backward", batch_norm_backward)

# %% [markdown]
# Simplifying the staged lines gives the one-line formula that the library's
# `batch_norm2d_backward` uses (`nnscratch/functional/batch_norm.py`, which derives it):
#
# $$dx = \gamma\,\frac{1}{\sqrt{\sigma^2+\epsilon}}\Big(dy - \frac{d\beta}{M} - \hat x\,\frac{d\gamma}{M}\Big)$$

# %%
dy = rng.standard_normal(x.shape)  # a random upstream gradient
dx_lib, dgamma_lib, dbeta_lib = F.batch_norm2d_backward(dy, cache)
dbeta, dgamma = dy.sum(axis=axes), (dy * xhat).sum(axis=axes)
dx_compact = G * inv_std * (dy - dbeta[None, :, None, None] / M - xhat * dgamma[None, :, None, None] / M)
print(f"max |library - compact formula|: dx {np.abs(dx_lib - dx_compact).max():.1e}, "
      f"dgamma {np.abs(dgamma_lib - dgamma).max():.1e}, dbeta {np.abs(dbeta_lib - dbeta).max():.1e}")

# %% [markdown]
# ## 3. Gradient check, and a trap
#
# The finite-difference check of every argument (float64). Training mode updates the running
# statistics in place, so the forward gets fresh ones on every call:

# %%
def bn_train(x, gamma, beta):
    return F.batch_norm2d_forward(x, gamma, beta, np.zeros(C), np.ones(C), training=True)


for key, err in check_op(bn_train, F.batch_norm2d_backward, {"x": x, "gamma": gamma, "beta": beta}).items():
    print(f"relative error of d{key}: {err:.1e}")

# %% [markdown]
# Why does the check draw a **random** `dy`? With `dy = 1` the loss is `L = sum(y)`. Per
# channel, `sum(xhat) = 0` whatever `x` is, so `L = M·sum(beta)` does not depend on `x` at all
# and the true `dx` is 0. A backward that returned zeros, or any multiple of the right answer,
# would pass a check with a uniform `dy`:

# %%
dx_uniform, _, _ = F.batch_norm2d_backward(np.ones_like(x), cache)
print(f"max |dx| for dy = 1:      {np.abs(dx_uniform).max():.1e}")
print(f"max |dx| for a random dy: {np.abs(dx_lib).max():.1e}")

# %% [markdown]
# Another special `dy` comes close to the same trap without falling into it: `dy = xhat`.
# The compact formula gives `dx = γ/sqrt(σ²+ε) · xhat · (1 − sum(xhat²)/M)`, and without `ε`
# `sum(xhat²)` would be exactly `M`. With `ε` it is `M·σ²/(σ²+ε)`, a little less, so `dx` is
# small but not zero: `dx = γ·ε·xc/(σ²+ε)²`, largest for a channel whose `σ²` is not much
# bigger than `ε`. Per channel (their standard deviations were drawn as 1, 3 and 0.2):

# %%
dx_xhat, _, _ = F.batch_norm2d_backward(xhat, cache)
predicted = G * eps * xc / (var + eps) ** 2
print("batch std per channel:         ", np.sqrt(var).ravel().round(3))
print("1 - sum(xhat^2) / M per channel:", [f"{v:.1e}" for v in 1 - (xhat**2).sum(axis=axes) / M])
print("max |dx| for dy = xhat:         ", [f"{v:.1e}" for v in np.abs(dx_xhat).max(axis=axes)])
print(f"max |dx - gamma*eps*xc/(var+eps)^2| = {np.abs(dx_xhat - predicted).max():.1e}")

# %% [markdown]
# The formula matches to rounding. In the narrow third channel `dx` is far above the rounding
# error of the `dy = 1` case, though far below the `dx` of a random `dy`; in the wide channels
# it is smaller by orders of magnitude, as `ε/σ²` is. So `dy = xhat` is not a true zero: it
# isolates the part of the gradient that exists only because of `ε`.

# %% [markdown]
# ## 4. Running statistics and evaluation mode
#
# In training mode each batch also moves the running statistics (momentum 0.1, as PyTorch
# means it; the running variance uses the **unbiased** batch variance):
#
# `running_mean ← 0.9·running_mean + 0.1·μ`,  `running_var ← 0.9·running_var + 0.1·σ²·M/(M−1)`.
#
# Evaluation mode uses them instead of the batch's, so `y` is a fixed affine map of `x` and
# `dx = dy·γ/sqrt(running_var + eps)`. Below, batches whose channels have means (3, −1) and
# standard deviations (2, 0.5) go through a `BatchNorm2d`; the running statistics approach
# the true values.

# %%
bn = nn.BatchNorm2d(2).to(np.float64)
true_mean, true_std = np.array([3.0, -1.0]), np.array([2.0, 0.5])
steps = 30 if FAST else 60
trace_mean, trace_var = [], []
for step in range(steps):
    xb = rng.standard_normal((8, 2, 4, 4)) * true_std[:, None, None] + true_mean[:, None, None]
    if step == 0:
        expected = 0.9 * 1.0 + 0.1 * xb.var(axis=(0, 2, 3), ddof=1)  # unbiased
    bn(xb)
    if step == 0:
        print("after one batch: running_var", bn.running_var.round(6), " expected", expected.round(6))
    trace_mean.append(bn.running_mean.copy())
    trace_var.append(bn.running_var.copy())
trace_mean, trace_var = np.array(trace_mean), np.array(trace_var)
print("after", steps, "batches: running_mean", bn.running_mean.round(3), " running_var", bn.running_var.round(3))
print(f"share of the initial gap a noise-free batch sequence would leave after {steps} batches: "
      f"0.9^{steps} = {0.9**steps:.2%}")

bn.eval()
xe = rng.standard_normal((2, 2, 3, 3))
scale = bn.weight.data / np.sqrt(bn.running_var + bn.eps)
print(f"eval mode is affine: max |bn(x) - (x - running_mean) * scale| = "
      f"{np.abs(bn(xe) - (xe - bn.running_mean[:, None, None]) * scale[:, None, None]).max():.1e}")


def bn_eval(x, gamma, beta):
    return F.batch_norm2d_forward(x, gamma, beta, bn.running_mean, bn.running_var, training=False)


print("eval-mode gradient check:", {k: f"{v:.1e}" for k, v in check_op(
    bn_eval, F.batch_norm2d_backward, {"x": xe, "gamma": rng.uniform(0.5, 1.5, 2), "beta": rng.standard_normal(2)}).items()})

fig, axs = new_figure(10, 3.2, ncols=2)
for ax, trace, target, label in [(axs[0], trace_mean, true_mean, "running_mean"),
                                 (axs[1], trace_var, true_std**2, "running_var")]:
    for c in range(2):
        ax.plot(np.arange(1, steps + 1), trace[:, c], color=f"C{c}", label=f"channel {c}")
        ax.axhline(target[c], color=f"C{c}", ls="--", lw=1)
    ax.set(xlabel="training batches seen", title=f"{label} (dashed: true value)")
    ax.grid(alpha=0.3)
    ax.legend()
fig

# %% [markdown]
# The running values start at 0 and 1 and close 10% of the remaining gap per batch: after
# `steps` batches a fraction `0.9^steps` of the gap is left (printed above: a negligible share
# in full mode), and what remains is the noise of the batch statistics, each batch weighing 10%.
#
# The layers run the fast twin of this op (`nnscratch/functional/fast/batch_norm.py`: numba
# kernels that read `x` once per pass, on every core). It computes the same numbers:

# %%
from nnscratch.functional import fast

y_fast, fast_cache = fast.batch_norm2d_forward(x, gamma, beta, np.zeros(C), np.ones(C), training=True)
print(f"max |fast - readable| = {np.abs(y_fast - y_lib).max():.1e}")

# %% [markdown]
# **Your turn: the forward pass with its running statistics.** Write
# `batch_norm_forward(x, gamma, beta, running_mean, running_var, momentum, eps) -> (y,
# new_running_mean, new_running_var)` in training mode. The check recognises a biased running
# variance, momentum read the other way round, and `eps` outside the square root.

# %%
# exercise: batch_norm_forward
def batch_norm_forward(x, gamma, beta, running_mean, running_var, momentum, eps):
    raise NotImplementedError  # y as in section 1; running stats as above (unbiased variance)

# %%
exercises.check("batch_norm_forward", batch_norm_forward)

# %% [markdown]
# ## 5. Max pooling
#
# $$y[n, c, p, q] = \max_{i, j}\; x[n, c,\; p s + i,\; q s + j]$$
#
# Only the largest element of each window affects `y`, so backward sends each `dy` entry to
# that element (the *winner*) and gives the others 0. With non-overlapping 2×2 windows (stride
# 2) the windows are a reshape of `x`:

# %%
x = rng.permutation(2 * 3 * 6 * 8).reshape(2, 3, 6, 8) / 288.0  # distinct values in [0, 1): no ties
k = 2
windows = x.reshape(2, 3, 6 // k, k, 8 // k, k)  # (N, C, H_out, k, W_out, k)
y = windows.max(axis=(3, 5))  # (N, C, H_out, W_out)

dy = rng.standard_normal(y.shape)
winner = windows == y[:, :, :, None, :, None]  # one True per window
dx = (winner * dy[:, :, :, None, :, None]).reshape(x.shape)

y_lib, cache = F.max_pool2d_forward(x, k)
dx_lib = F.max_pool2d_backward(dy, cache)
print(f"max |ours - library|: y {np.abs(y - y_lib).max():.1e}, dx {np.abs(dx - dx_lib).max():.1e}")

# %% [markdown]
# A gradient check needs inputs without ties (a tie is a kink: nudging one of two equal values
# changes which one wins). Distinct values 1/288 apart are far from any kink for `eps = 1e-6`.
# The ImageNet stem's pooling has overlapping 3×3 windows with stride 2 and padding 1: there a
# pixel can win several windows (up to four), and its gradient is the sum.

# %%
def pool_2x2(x):
    return F.max_pool2d_forward(x, 2)


def pool_3x3_s2_p1(x):
    return F.max_pool2d_forward(x, 3, 2, 1)


for name, pool in [("2x2, stride 2", pool_2x2), ("3x3, stride 2, padding 1", pool_3x3_s2_p1)]:
    print(f"{name:25s} relative error of dx: {check_op(pool, F.max_pool2d_backward, {'x': x})['x']:.1e}")
y3, cache3 = F.max_pool2d_forward(x, 3, 2, 1)
dx3 = F.max_pool2d_backward(np.ones_like(y3), cache3)
print("most windows won by one pixel:", int(dx3.max()))

# %% [markdown]
# At a tie PyTorch's convention, and ours, is that exactly one element gets the gradient: the
# first maximum in row-major order.

# %%
y_tie, cache_tie = F.max_pool2d_forward(np.zeros((1, 1, 4, 4)), 2)
print(F.max_pool2d_backward(np.ones((1, 1, 2, 2)), cache_tie)[0, 0])

# %% [markdown]
# A picture: a synthetic image, its 2×2 max-pool, and `dx` for `dy = 1`, which marks the
# winners: one pixel in each 2×2 block, the brightest.

# %%
train, _ = data.synthetic(n_train=20, n_test=0, seed=2)
index = int(np.flatnonzero(train.labels == 3)[0])  # class 3: checkerboard
image = train.images[index].mean(axis=0)[None, None] / 255.0  # (1, 1, 32, 32)
pooled, cache = F.max_pool2d_forward(image, 2)
winners = F.max_pool2d_backward(np.ones_like(pooled), cache)

fig, axs = new_figure(11, 3.6, ncols=3)
for ax, img, title in [(axs[0], image[0, 0], "input 32x32"), (axs[1], pooled[0, 0], "max-pooled 16x16"),
                       (axs[2], winners[0, 0], "dx for dy = 1: the winners")]:
    ax.imshow(img, cmap="gray")
    ax.set_title(title, fontsize=10)
    ax.axis("off")
fig

# %% [markdown]
# **Your turn.** Write `max_pool_backward(dy, x, kernel_size, stride) -> dx`: each `dy` entry goes
# to its window's first maximum in row-major order, and an element that wins several
# overlapping windows collects all their gradients. The check includes windows with ties.

# %%
# exercise: max_pool_backward
def max_pool_backward(dy, x, kernel_size, stride):
    raise NotImplementedError  # for each window: np.argmax picks the first maximum

# %%
exercises.check("max_pool_backward", max_pool_backward)

# %% [markdown]
# ## 6. Global average pooling
#
# ResNets end with the mean over each channel's `H×W` map. Every pixel had an equal share in
# the mean. **Your turn:** `global_avg_pool_backward(dy, x_shape) -> dx`.

# %%
# exercise: global_avg_pool_backward
def global_avg_pool_backward(dy, x_shape):
    raise NotImplementedError  # every pixel had an equal share of the mean

# %%
exercises.check("global_avg_pool_backward", global_avg_pool_backward)

# %% [markdown]
# The library's version, against finite differences:

# %%
x = rng.standard_normal((2, 4, 3, 5))
print(f"relative error of dx: {check_op(F.global_avg_pool2d_forward, F.global_avg_pool2d_backward, {'x': x})['x']:.1e}")

# %% [markdown]
# ## Exercises
#
# 1. Checked above: `batch_norm_backward`, `batch_norm_forward`, `max_pool_backward` and
#    `global_avg_pool_backward` (each `exercises.check` compares with the library on several
#    cases and, for the backward passes, with finite differences).
#    Then derive the compact batch-norm formula from your staged lines (hint: `sum(xc) = 0`).
# 2. Derive the `dx` that `dy = xhat` gives in training mode (section 3): which property of
#    `xhat` would make it zero, and why does `eps` break it? Set `eps = 0` in a copy of the
#    forward and check that `dx` drops to rounding error.
# 3. Batch norm in training mode refuses a batch with one value per channel (`N = H = W = 1`).
#    Try it, and explain why such a layer would output `beta` whatever the input.
# 4. In the 3×3 / stride 2 / padding 1 pooling, find a pixel that wins two windows and check its
#    `dx` is the sum of the two `dy` entries.
# 5. Stage the eval-mode backward by hand and compare with `batch_norm2d_backward` on a cache
#    made with `training=False`.

# Source of notebooks/01_layers_and_backprop.ipynb (build and run: python notebooks/run_notebooks.py).

# %% [markdown]
# # 01 · Layers and backprop: convolution via im2col, gradient checking
#
# **What you will learn**
#
# - how a convolution becomes one matrix product once every window is copied into a column (im2col);
# - how its backward pass (`dx`, `dw`, `db`) follows from that product, step by step in numpy;
# - how to check a gradient with finite differences, and what a failing check looks like;
# - how modules chain their backward passes into backprop for a whole network.
#
# Read beside it: `nnscratch/functional/conv.py` (the readable op: im2col, one matrix product,
# col2im, and the loop twin) and `nnscratch/gradcheck.py`. The layers run the same op from
# `nnscratch/functional/fast/conv.py` (numba kernels on every core), tested equal to it.

# %%
import os
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm, without ipywidgets
from nnscratch import data, exercises, nn
from nnscratch import functional as F
from nnscratch.functional import fast
from nnscratch.functional.conv import conv_geometry
from nnscratch.gradcheck import GradcheckError, check_module, check_op
from nnscratch.plot.figure import new_figure

%matplotlib inline

FAST = os.environ.get("NNSCRATCH_FAST") == "1"  # CI sets this: smaller sizes, same steps
rng = np.random.default_rng(0)
print("fast mode" if FAST else "full mode")

# %% [markdown]
# ## 1. Forward: a sum over windows
#
# A convolution layer (a cross-correlation, as in PyTorch) computes, for image `n`, output
# channel `o` and output position `(p, q)`:
#
# $$y[n, o, p, q] = b[o] + \sum_{c, i, j} w[o, c, i, j]\; x_{pad}[n, c,\; p s + i,\; q s + j]$$
#
# with stride `s` and `x_pad` the input with `P` zeros around it. The output is
# `H_out = (H + 2P - KH) // s + 1` pixels high (and likewise wide).
#
# **im2col** copies each window into one column of a matrix `cols`. The sum then becomes one
# matrix product, `Y = W2 @ cols` with `W2 = w.reshape(C_out, C_in*KH*KW)`, which BLAS runs at
# full speed. Here is im2col on a 4×4 image whose pixels are numbered 1 to 16, with a 3×3 kernel:

# %%
x = np.arange(1, 17, dtype=np.float64).reshape(1, 1, 4, 4)  # (N, C, H, W) = (1, 1, 4, 4)
w = np.ones((1, 1, 3, 3))
g = conv_geometry("demo", x, w, stride=1, padding=0)
print(g)
print("image:\n", x[0, 0])
print("cols (C*KH*KW, N*H_out*W_out) = (9, 4); column k is the window of output pixel k:")
print(F.im2col(x, g))

# %% [markdown]
# Now a less friendly case: two images, 3 input channels, odd sizes, stride 2 and padding 1.
# We compute the convolution as `W2 @ cols` ourselves and compare with the library's op
# (`conv2d_forward`, the readable one in `nnscratch/functional/conv.py`) and its loop twin
# (`conv2d_naive_forward`).

# %%
N, C_in, H, W, C_out = 2, 3, 7, 6, 4
x = rng.standard_normal((N, C_in, H, W))
w = rng.standard_normal((C_out, C_in, 3, 3))
b = rng.standard_normal(C_out)
stride, padding = 2, 1

g = conv_geometry("demo", x, w, stride, padding)
cols = F.im2col(x, g)  # (C_in*KH*KW, N*H_out*W_out)
W2 = w.reshape(C_out, -1)  # (C_out, C_in*KH*KW)
Y = W2 @ cols + b[:, None]  # (C_out, N*H_out*W_out)
y = Y.reshape(C_out, N, g.H_out, g.W_out).transpose(1, 0, 2, 3)  # (N, C_out, H_out, W_out)

y_lib, cache = F.conv2d_forward(x, w, b, stride=stride, padding=padding)
y_naive, naive_cache = F.conv2d_naive_forward(x, w, b, stride=stride, padding=padding)
print("cols", cols.shape, "-> y", y.shape)
print(f"max |ours - library| = {np.abs(y - y_lib).max():.1e}")
print(f"max |ours - naive|   = {np.abs(y - y_naive).max():.1e}")

# %% [markdown]
# **Your turn: im2col and the forward pass.** Write `im2col(x, KH, KW, stride, padding)` for a
# whole batch, with the row and column order above, and `conv2d_forward(x, w, b, stride,
# padding)` on top of it. `exercises.describe("im2col")` says exactly what each takes and
# returns. Each check runs your function on several awkward cases (batch 1, odd sizes, stride 2,
# padding, non-square kernels), compares it with the library, and names the first thing that
# differs (the output, the case, the worst index, both values) with a hint when it recognises a
# common mistake. Left as they are, the checks say "not implemented yet" and the lesson goes on.

# %%
# exercise: im2col
def im2col(x, KH, KW, stride, padding):
    raise NotImplementedError  # (N, C, H, W) -> cols (C*KH*KW, N*H_out*W_out)

# %%
exercises.check("im2col", im2col)

# %%
# exercise: conv2d_forward
def conv2d_forward(x, w, b, stride, padding):
    raise NotImplementedError  # cols = im2col(...); Y = W2 @ cols + b; reshape to NCHW

# %%
exercises.check("conv2d_forward", conv2d_forward)

# %% [markdown]
# ## 2. Backward, staged
#
# Backward gets `dy = ∂L/∂y` and must return `dx`, `dw`, `db`. Since `Y = W2 @ cols + b`:
#
# - `db[o]` is the sum of `dy` over everything but the channel `o`;
# - `dW2 = dY @ cols.T`;
# - `dcols = W2.T @ dY`, and **col2im** adds every column of `dcols` back onto the pixels it
#   was copied from. A pixel that sits in several windows collects several contributions.
#
# **Your turn.** Write `conv2d_backward(dy, x, w, stride, padding) -> (dx, dw, db)` from these
# three lines (and `col2im`, the transpose of your `im2col`, which it needs), then run the checks.
# Besides the library, the backward check compares your gradients with central finite
# differences of the forward pass, so it tells a wrong formula from a wrong layout.

# %%
# exercise: col2im
def col2im(dcols, x_shape, KH, KW, stride, padding):
    raise NotImplementedError  # add every column back onto the pixels it was copied from

# %%
exercises.check("col2im", col2im)

# %%
# exercise: conv2d_backward
def conv2d_backward(dy, x, w, stride, padding):
    raise NotImplementedError  # dY = dy as (C_out, N*L); db, dW2 = dY @ cols.T, dcols = W2.T @ dY

# %%
exercises.check("conv2d_backward", conv2d_backward)

# %% [markdown]
# The library's backward (`F.conv2d_backward`, the same three lines) against the loop twin,
# which adds each output's share back one window at a time:

# %%
dy = rng.standard_normal(y.shape)  # (N, C_out, H_out, W_out), an upstream gradient
dx_lib, dw_lib, db_lib = F.conv2d_backward(dy, cache)
dx_naive, dw_naive, db_naive = F.conv2d_naive_backward(dy, naive_cache)
for name, lib, naive in [("dx", dx_lib, dx_naive), ("dw", dw_lib, dw_naive), ("db", db_lib, db_naive)]:
    print(f"{name}: max |library - naive| = {np.abs(lib - naive).max():.1e}")

# %% [markdown]
# col2im is the *transpose* of im2col: for any image `u` and any column matrix `v`,
# `<im2col(u), v> = <u, col2im(v)>`. That is exactly why it appears in the backward pass.

# %%
u = rng.standard_normal(x.shape)
v = rng.standard_normal(cols.shape)
print(f"<im2col(u), v> = {np.sum(F.im2col(u, g) * v):.12f}")
print(f"<u, col2im(v)> = {np.sum(u * F.col2im(v, x.shape, g)):.12f}")

# %% [markdown]
# Loops against im2col + GEMM on a layer of realistic shape: the readable op (one GEMM for the
# batch) and the fast one (numba im2col, a few images at a time, every core). Times are for
# this machine, the best of three runs:

# %%
shape, kernel = ((2, 8, 8, 8), (8, 8, 3, 3)) if FAST else ((8, 32, 16, 16), (32, 32, 3, 3))
xt = rng.standard_normal(shape).astype(np.float32)
wt = rng.standard_normal(kernel).astype(np.float32)
fast.conv2d_forward(xt, wt, padding=1)  # the first call may compile the numba kernels
timings = {}
for name, op in [("loops (F.conv2d_naive_forward)", F.conv2d_naive_forward),
                 ("readable (F.conv2d_forward)", F.conv2d_forward),
                 ("fast (fast.conv2d_forward)", fast.conv2d_forward)]:
    runs = []
    for _ in range(1 if "loops" in name else 3):
        start = time.perf_counter()
        out, _ = op(xt, wt, padding=1)
        runs.append(time.perf_counter() - start)
    timings[name] = min(runs)
    print(f"{name:32s} {1000 * timings[name]:8.1f} ms")
loops, readable, fastest = timings.values()
print(f"readable im2col + GEMM: {loops / readable:.0f}x faster than the loops; "
      f"fast: {readable / fastest:.1f}x faster than readable")

# %% [markdown]
# ## 3. A picture: what one gradient entry touches
#
# A vertical-edge filter on an image of the synthetic data set (left two panels). Then two
# backward passes: a `dy` that is 1 at a single output pixel sends the kernel back onto that
# pixel's window (third panel), and with `w = 1`, `dy = 1`, stride 2, `dx` counts how many
# windows each input pixel belongs to (right): col2im's sums made visible.

# %%
train, _ = data.synthetic(n_train=20, n_test=0, seed=1)
index = int(np.flatnonzero(train.labels == 1)[0])  # class 1: vertical stripes
image = train.images[index].mean(axis=0)[None, None] / 255.0  # (1, 1, 32, 32), grey

sobel = np.array([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])[None, None]  # (1, 1, 3, 3)
edges, edge_cache = F.conv2d_forward(image, sobel, padding=1)
one_hot = np.zeros_like(edges)
one_hot[0, 0, 16, 12] = 1.0
dx_one, _, _ = F.conv2d_backward(one_hot, edge_cache)

_, count_cache = F.conv2d_forward(image, np.ones((1, 1, 3, 3)), stride=2, padding=1)
windows_per_pixel, _, _ = F.conv2d_backward(np.ones((1, 1, 16, 16)), count_cache)

fig, axes = new_figure(13, 3.4, ncols=4)
panels = [
    (image[0, 0], "input (class: vertical stripes)", "gray"),
    (edges[0, 0], "y: vertical-edge filter", "RdBu_r"),
    (dx_one[0, 0, 12:21, 8:17], "dx for dy = 1 at one pixel (zoom)", "RdBu_r"),
    (windows_per_pixel[0, 0, :8, :8], "dx for w = 1, dy = 1, stride 2 (corner)", "viridis"),
]
for ax, (img, title, cmap) in zip(axes, panels):
    lim = np.abs(img).max()
    signed = cmap == "RdBu_r"
    im = ax.imshow(img, cmap=cmap, vmin=-lim if signed else None, vmax=lim if signed else None)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    fig.colorbar(im, ax=ax, shrink=0.8)
for (i, j), count in np.ndenumerate(windows_per_pixel[0, 0, :8, :8]):
    axes[3].text(j, i, f"{count:.0f}", ha="center", va="center", fontsize=7, color="white")
fig

# %% [markdown]
# The third panel is the Sobel kernel itself, placed on the window of the chosen output
# pixel: `∂y[p, q] / ∂x` is the kernel (not flipped, since this is a cross-correlation). In the
# fourth, a 3×3 window moved by 2 shares one row (and one column) with its neighbour: pixels on
# such a shared row *and* column belong to 4 windows, on one of them to 2, on neither to 1.
# (The strong columns at the borders of the second panel come from the zero padding.)
#
# ## 4. Gradient checking
#
# A finite-difference check perturbs one input entry by `±eps` and measures how the scalar
# `L = sum(y * dy)` changes, with a **random** `dy`:
#
# $$\frac{\partial L}{\partial a_k} \approx \frac{L(a + \epsilon e_k) - L(a - \epsilon e_k)}{2\epsilon}$$
#
# It compares every entry with what backward returned, as the relative error
# `max|analytic − numeric| / max(|analytic|, |numeric|)`, in float64 (float32 rounding would
# drown the differences). `check_op` does this for every argument of a functional pair:

# %%
def conv(x, w, b):
    return F.conv2d_forward(x, w, b, stride=2, padding=1)


errors = check_op(conv, F.conv2d_backward, {"x": x, "w": w, "b": b}, name="conv2d")
for key, err in errors.items():
    print(f"relative error of d{key}: {err:.1e}")

# %% [markdown]
# A check is only useful if it can fail. Here is a backward with a classic bug, the bias
# gradient averaged over the batch instead of summed. The check names the argument, the
# worst entry and both values:

# %%
def buggy_backward(dy, cache):
    dx, dw, db = F.conv2d_backward(dy, cache)
    return dx, dw, db / dy.shape[0]  # bug: db must be summed over the batch, not averaged


print(check_op(conv, buggy_backward, {"x": x, "w": w, "b": b}, raise_on_failure=False))
try:
    check_op(conv, buggy_backward, {"x": x, "w": w, "b": b}, name="conv2d")
except GradcheckError as error:
    print(error)

# %% [markdown]
# ## 5. Backprop through a stack of modules
#
# A module's `forward` keeps what its backward needs; its `backward(dy)` adds the parameter
# gradients into `param.grad` and returns `dx`, which is the `dy` of the module before it.
# Backprop is that, in reverse order: the chain rule, one module at a time.

# %%
net = nn.Sequential(
    nn.Conv2d(3, 8, 3, padding=1, rng=rng),
    nn.ReLU(),
    nn.AdaptiveAvgPool2d(1),
    nn.Flatten(),
    nn.Linear(8, 10, rng=rng),
).to(np.float64)
criterion = nn.CrossEntropyLoss()
xb = rng.standard_normal((4, 3, 8, 8))
labels = np.array([0, 3, 3, 9])

loss = criterion(net(xb), labels)
d = criterion.backward()  # dL/dlogits, (4, 10)
for layer in reversed(list(net)):  # exactly what net.backward does
    print(f"{type(layer).__name__:18s} gets dy {str(d.shape):16s}", end=" ")
    d = layer.backward(d)
    print(f"returns dx {d.shape}")
print(f"loss {loss:.4f}; conv weight grad norm {np.linalg.norm(net[0].weight.grad):.4f}")

# %% [markdown]
# **Your turn: the two simplest layers of that stack.** `linear` is a pair, forward and backward
# (`check("linear", (linear_forward, linear_backward))`); `relu_backward(dy, x)` returns `dx`
# (with the convention relu'(0) = 0, as PyTorch has it).

# %%
# exercise: linear
def linear_forward(x, w, b):
    raise NotImplementedError  # y = x @ w.T + b, and a cache for backward


def linear_backward(dy, cache):
    raise NotImplementedError  # dx, dw, db

# %%
exercises.check("linear", (linear_forward, linear_backward))

# %%
# exercise: relu_backward
def relu_backward(dy, x):
    raise NotImplementedError

# %%
exercises.check("relu_backward", relu_backward)

# %% [markdown]
# `check_module` checks the input gradient and every parameter of a whole module the same way:

# %%
for key, err in check_module(net, xb).items():
    print(f"{key:10s} {err:.1e}")

# %% [markdown]
# ## Exercises
#
# 1. For a 7×6 input, a 3×3 kernel, stride 2 and padding 1, compute `H_out` and `W_out` with
#    the formula, then compare with `conv_geometry`.
# 2. The checked exercises above (`im2col`, `conv2d_forward`, `col2im`, `conv2d_backward`,
#    `linear`, `relu_backward`): each `exercises.check` compares your function with the library
#    on several awkward cases and, for the backward ones, with finite differences.
#    Then write im2col for one image with four Python loops and compare it with `F.im2col`.
# 3. Break the backward in another way (drop the `.T` in `dW2 = dY @ cols.T`, or overwrite
#    instead of adding in col2im) and see which check fails, and at which entry.
# 4. A 1×1 convolution with stride 1 and no padding needs no im2col: show that `cols` is then
#    `x[n]` reshaped to `(C_in, H*W)` (the library's `pointwise` path in `conv2d_forward`).
# 5. Redo the gradient check in float32 (`x.astype(np.float32)` …): `check_op` refuses. Why
#    would the check be meaningless there?

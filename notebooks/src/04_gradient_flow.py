# Source of notebooks/04_gradient_flow.ipynb (build and run: python notebooks/run_notebooks.py).

# %% [markdown]
# # 04 · Gradient flow: three regimes, not one
#
# **What you will learn**
#
# - why, without batch norm, the backward signal shrinks or keeps its size layer by layer
#   depending on the initialisation (a one-layer calculation, then measured);
# - the three regimes at initialisation, for plain nets and their residual twins:
#   1. **no batch norm, classic small init** (PyTorch's layer default): the plain net's gradients
#      **vanish** towards the input, the residual net's do not;
#   2. **no batch norm, He init**: **neither** vanishes;
#   3. **batch norm** (how ResNets are actually built): the plain net's gradients **grow**
#      (explode) towards the input, more with depth; the residual net's stay within a small factor;
# - the gradient ledger: at each block, how the input gradient splits between the main branch and
#   the shortcut.
#
# So "skip connections fix vanishing gradients" is not the story of a batch-norm ResNet: there the
# plain net's gradients do not vanish, and yet deep plain nets train worse (notebook 06).
# Read beside it: `nnscratch/experiments/gradflow.py`, `nnscratch/nn/init.py`.

# %%
import os
import warnings

import numpy as np

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm, without ipywidgets
from nnscratch import experiments, plot
from nnscratch import functional as F
from nnscratch.gradcheck import check_module
from nnscratch.nn import init
from nnscratch.plot.figure import new_figure

%matplotlib inline

FAST = os.environ.get("NNSCRATCH_FAST") == "1"  # CI sets this: smaller sizes, same steps
if FAST:
    MODELS, WIDTH, BATCH, LEDGER_MODEL = ("resnet20", "resnet56"), 0.25, 8, "resnet20"
else:
    MODELS, WIDTH, BATCH, LEDGER_MODEL = ("resnet20", "resnet56", "resnet110"), 0.5, 16, "resnet56"
rng = np.random.default_rng(0)
print("fast mode" if FAST else "full mode", dict(models=MODELS, width=WIDTH, batch=BATCH))

# %% [markdown]
# ## 1. The math: the gain of one layer
#
# Take one layer of a plain net without batch norm, `z = conv(relu(z_prev))`. Backward gives
# `dz_prev = relu'(z_prev) ⊙ convᵀ(dz)`. Each entry of `convᵀ(dz)` sums `fan_out = C_out·KH·KW`
# terms `w·dz`, and ReLU keeps about half of the entries, so with weights of variance `σ²`:
#
# $$\frac{|dz_{prev}|^2}{|dz|^2} \approx \tfrac12\,\mathrm{fan\_out}\;\sigma^2$$
#
# - PyTorch's default `U(−1/√fan_in, 1/√fan_in)` has `σ² = 1/(3·fan_in)`: with `fan_in = fan_out`
#   the gain is `√(1/6) ≈ 0.41` **per layer**. Over 18 layers that is `0.41^18 ≈ 1e-7`.
# - Xavier has `σ² = 2/(fan_in + fan_out)`: gain `√(1/2) ≈ 0.71`.
# - He (fan_out mode, torchvision's choice) has `σ² = 2/fan_out`: gain `1`.
#
# Measured on one 3×3 conv layer with 16 channels (*exercise: stage it yourself first*):

# %%
C, S = 16, 32
shape = (C, C, 3, 3)
fan_in, fan_out = init.fans(shape)
draws = {
    "torch": lambda: init.torch_default_uniform(shape, fan_in, rng, np.float64),
    "xavier": lambda: init.xavier_uniform(shape, rng, np.float64),
    "he": lambda: init.kaiming_normal(shape, rng, "fan_out", np.float64),
}
predicted = {"torch": np.sqrt(fan_out / (3 * fan_in) / 2), "xavier": np.sqrt(fan_out / (fan_in + fan_out)),
             "he": 1.0}
measured = {}
for name, draw in draws.items():
    gains = []
    for _ in range(5):
        z_prev = rng.standard_normal((4, C, S, S))
        h, relu_cache = F.relu_forward(z_prev)
        z, conv_cache = F.conv2d_forward(h, draw(), padding=1)
        dz = rng.standard_normal(z.shape)
        dh, _, _ = F.conv2d_backward(dz, conv_cache)
        dz_prev = F.relu_backward(dh, relu_cache)
        gains.append(np.linalg.norm(dz_prev) / np.linalg.norm(dz))
    measured[name] = float(np.mean(gains))
    print(f"{name:7s} gain per layer: predicted {predicted[name]:.3f}, measured {measured[name]:.3f}")

# %% [markdown]
# (The measured gains are slightly lower because the pixels at the border have fewer neighbours.)
#
# ## 2. The three regimes in real networks
#
# `experiments.regimes` builds each CIFAR ResNet and its plain twin (the same layers and the same
# initial weights, no shortcuts), runs one forward and backward pass on a fixed batch of the
# synthetic set in training mode, in float64, and records every conv's weight-gradient norm
# `|dL/dW|`. The headline number is the ratio of the first conv's to the last conv's: far below 1
# means the gradient vanishes towards the input, far above 1 that it explodes.

# %%
result = experiments.regimes(MODELS, ["no_bn_torch", "no_bn_he", "bn_he"], width=WIDTH, batch_size=BATCH)
print(experiments.format_table(result["table"]))

# %%
plot.ratio_figure(result["table"])

# %% [markdown]
# Every conv of every run (plain red, residual blue; triangles on the bottom edge mark gradients
# that are exactly 0, which happens only when float64 itself underflows):

# %%
plot.gradflow_figure(result["runs"])

# %% [markdown]
# Reading the numbers:
#
# - **No BN, PyTorch default init.** The plain net's ratio falls by orders of magnitude with every
#   extra stage of depth: the first layers receive almost nothing. The residual twin stays near 1:
#   the shortcuts carry the gradient past the shrinking branches.
# - **No BN, He init.** The plain net's ratio stays within one or two orders of magnitude of 1 at
#   every depth, where the default init loses tens of orders: with gain 1 per layer nothing
#   vanishes, shortcuts or not.
# - **BN, He init.** The plain net's ratio is far *above* 1 and grows roughly exponentially with
#   depth: with batch norm the gradient **explodes** towards the input at initialisation (Yang et
#   al. 2019 show that no choice of initial weight variance removes this). The residual twin's ratio
#   stays within a factor of about 20.
#
# The per-layer factors behind those ratios, compared with the one-layer calculation:

# %%
def per_layer_factor(run):
    return run["ratio"] ** (1 / (run["depth"] - 2))  # from the first to the last main-path conv


print(f"{'regime':30s}{'model':>10s}{'plain':>10s}{'residual':>10s}")
for key, label in [("no_bn_torch", "no BN, PyTorch default init"), ("no_bn_he", "no BN, He init"),
                   ("bn_he", "BN, He init")]:
    for model in MODELS:
        pair = {r["config"]["residual"]: r for r in result["runs"] if r["regime"] == key and r["config"]["model"] == model}
        print(f"{label:30s}{model:>10s}{per_layer_factor(pair[False]):>10.3f}{per_layer_factor(pair[True]):>10.3f}")
print(f"one-layer prediction for the plain net without BN: PyTorch init {predicted['torch']:.3f}, He init 1")

# %% [markdown]
# Without batch norm the plain nets follow the one-layer calculation: about 0.41 per layer with
# PyTorch's init, and close to 1 with He's (the stride-2 stages, the pooling and the head are
# outside the one-layer calculation, hence not exactly 1). With batch norm the plain nets gain a steady factor
# above 1 per layer, which no initialisation removes: batch norm divides by the batch's standard
# deviation, so the weight scale cancels out of the gain.
#
# ## 3. These are true gradients
#
# A gradient of 1e-20 could be a bug as easily as a fact. The numbers come from the same backward
# passes that the finite-difference check confirms; here is the check on a small plain net in the
# vanishing regime (no batch norm, PyTorch's init), on a sample of entries of each tensor.
# Finite differences have an absolute noise floor (about 1e-10 here), so their relative error
# grows as a gradient shrinks; a tensor passes when the relative error is below 1e-6 or every
# difference is below 1e-8. They cannot resolve 1e-20 themselves: that is what the exact backward,
# in float64, is for.

# %%
tiny = experiments.build_model("resnet8", residual=False, batch_norm=False, init="torch", width=0.25,
                               dtype="float64", seed=0)
x_check = rng.standard_normal((2, 3, 8, 8))
errors = check_module(tiny, x_check, max_entries=10 if FAST else 40)  # raises if any tensor fails
grads = {name: np.abs(p.grad).max() for name, p in tiny.named_parameters()}
print(f"{'tensor':24s}{'max |grad|':>12s}{'rel. error':>12s}")
for name, err in errors.items():
    size = f"{grads[name]:.1e}" if name in grads else "-"  # "input": the image, not a parameter
    print(f"{name:24s}{size:>12s}{err:>12.1e}")

# %% [markdown]
# ## 4. The gradient ledger
#
# A residual block's backward splits its input gradient in two: `dx = dx_main + dx_shortcut`
# (notebook 03). With batch norm and He init, the ledger of every block of the plain net and the
# residual net: the bars show the shares of `|dx_main|` and `|dx_shortcut|`, the black line `|dx|`
# at the block's input (log scale, right axis).

# %%
ledger_runs = [r for r in result["runs"] if r["regime"] == "bn_he" and r["config"]["model"] == LEDGER_MODEL]
plot.ledger_figure(ledger_runs)

# %%
for run in ledger_runs:
    blocks = run["blocks"]
    kind = "residual" if run["config"]["residual"] else "plain"
    growth = blocks[0]["total"] / blocks[-1]["total"]
    print(f"{kind:8s} |dx| at the first block / at the last block: {growth:9.3g}")
    if run["config"]["residual"]:
        shares = [b["shortcut"] / (b["main"] + b["shortcut"]) for b in blocks]
        print(f"         shortcut share of |main| + |shortcut|: {shares[0]:.2f} at the first block, "
              f"{np.median(shares):.2f} median, {shares[-1]:.2f} at the last")

# %% [markdown]
# In the plain net every block multiplies the gradient by the same factor above 1, so `|dx|`
# grows by orders of magnitude from the output to the input. In the residual net each block
# only *adds* its branch's part to what the shortcut carries unchanged, so `|dx|` changes far
# less along the depth. The shortcut's share is largest in the blocks near the output.
#
# ## 5. After training starts
#
# Everything above is at initialisation. `gradient_flow(..., steps=k)` first takes `k` SGD steps
# (learning rate 0.1, momentum 0.9, batch norm, He init: the setting of notebook 06) and then
# measures the same ratio on the same fixed batch. Single precision is enough here.

# %%
STEPS = (0, 3) if FAST else (0, 20, 100)
after = {}
for model in MODELS[:2]:
    for residual in (False, True):
        label = f"{'residual' if residual else 'plain'} {model}"
        after[label] = [experiments.gradient_flow(model, residual=residual, batch_norm=True, init="he",
                                                  width=WIDTH, batch_size=BATCH, steps=k, lr=0.1,
                                                  dtype="float32")
                        for k in STEPS]
print(f"{'first/last conv gradient ratio':32s}" + "".join(f"{f'after {k} steps':>16s}" for k in STEPS))
for label, runs in after.items():
    print(f"{label:32s}" + "".join(f"{r['ratio']:>16.3g}" for r in runs))
print(f"{'loss on the fixed batch':32s}")
for label, runs in after.items():
    print(f"{label:32s}" + "".join(f"{r['loss']:>16.3f}" for r in runs))

fig, ax = new_figure(7, 4)
for k, (label, runs) in enumerate(after.items()):
    ax.semilogy(STEPS, [r["ratio"] for r in runs], "o-" if "residual" in label else "s--",
                color=f"C{k}", label=label)
ax.axhline(1, color="grey", lw=0.8, ls=":")
ax.set(xlabel="SGD steps taken before measuring", ylabel="|dL/dW_first| / |dL/dW_last|",
       title="batch norm, He init: the ratio once training has started")
ax.grid(alpha=0.3, which="both")
ax.legend(fontsize=8)
fig

# %% [markdown]
# In the full run the picture changes within 20 steps. The deep plain net's ratio falls from
# about 3 000 to about 0.002: its first layers now receive far *less* gradient than its last.
# The 56-layer residual net's ratio falls too, from about 20 to about 0.1, and the 20-layer nets
# end near 1 (residual) and 0.5 (plain). None of them has learned this batch yet (every loss is
# still close to ln 10 ≈ 2.30), and another seed or learning rate moves these numbers by up to
# an order of magnitude (exercise 5). What holds: the ratio at initialisation does not say what
# the gradients look like a few steps later, and of the four nets the deep plain one is left
# with the weakest signal at its first layers. Gradients at initialisation alone, exploding or
# vanishing, do not explain which nets train; notebook 06 trains them.
#
# ## Exercises
#
# 1. Add the `"no_bn_xavier"` regime. Predict the plain ResNet-20's ratio from the Xavier gain
#    (`√(1/2)` per layer) before running it.
# 2. Run `experiments.gradient_flow("resnet56", residual=False, batch_norm=False, init="he")` with
#    `activation="tanh"`. He init assumes ReLU's factor ½: what happens to the gain?
# 3. Add `"bn_torch"` (batch norm with PyTorch's small init). Does the init matter once batch
#    norm is there? Use the one-layer argument to explain.
# 4. Without batch norm and with He init the residual nets' *activations* grow with depth (each
#    block adds its branch's variance). Check `out_std` in the rows of `run["blocks"]`.
# 5. Repeat section 5 with a smaller learning rate (`lr=0.01`) and with another `seed`. Which
#    conclusions survive?

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
#   2. **no batch norm, He init**: **neither** vanishes, but the residual net's activations and
#      gradients **grow in absolute size** with depth (each block adds its branch's variance);
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
from nnscratch import exercises, experiments, models, plot
from nnscratch import functional as F
from nnscratch.gradcheck import check_module
from nnscratch.nn import BasicBlock, CrossEntropyLoss, init
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
# - PyTorch's default `U(−1/√fan_in, 1/√fan_in)` has `σ² = 1/(3·fan_in)` (the variance of
#   `U(−a, a)` is `a²/3`).
# - Xavier has `σ² = 2/(fan_in + fan_out)`: gain `√(1/2) ≈ 0.71`.
# - He (fan_out mode, torchvision's choice) has `σ² = 2/fan_out`: gain `1`.
#
# **Your turn, before the measurement.** With `fan_in = fan_out`, by what factor does one such
# layer with PyTorch's default init multiply the gradient's mean square, `|dz_prev|²/|dz|²`? And
# write `he_std(shape, mode)`, the standard deviation He's init draws with, from a weight's shape.

# %%
# exercise: one_layer_gain
answer = NotImplemented  # the factor, a number

# %%
exercises.check("one_layer_gain", answer)

# %%
# exercise: he_std
def he_std(shape, mode):
    raise NotImplementedError  # fan_in = C_in*KH*KW, fan_out = C_out*KH*KW; std = sqrt(2 / fan)

# %%
exercises.check("he_std", he_std)

# %% [markdown]
# The gains of the norm (the square roots of those factors), measured on one 3×3 conv layer with
# 16 channels, against the prediction:

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
# The ratio hides the absolute sizes, which the y-axes of the middle column show. The same runs,
# in numbers: the median `|dL/dW|` over the main-path convs, the std of the last block's output,
# and the loss on the batch (ln 10 ≈ 2.30 for a network that knows nothing yet):

# %%
def pair_of(key, model):
    return {r["config"]["residual"]: r for r in result["runs"] if r["regime"] == key and r["config"]["model"] == model}


def median_grad(run):
    return np.median([c["grad_norm"] for c in run["convs"] if not c["shortcut"]])


print(f"{'':40s}{'median |dL/dW|':>22s}{'last block std':>22s}{'loss':>22s}")
print(f"{'regime':30s}{'model':>10s}" + f"{'plain':>11s}{'residual':>11s}" * 3)
for key in ("no_bn_torch", "no_bn_he", "bn_he"):
    for model in MODELS:
        pair = pair_of(key, model)
        cells = [median_grad(pair[False]), median_grad(pair[True]), pair[False]["blocks"][-1]["out_std"],
                 pair[True]["blocks"][-1]["out_std"], pair[False]["loss"], pair[True]["loss"]]
        print(f"{experiments.REGIMES[key]['label']:30s}{model:>10s}" + "".join(f"{v:>11.3g}" for v in cells))
for model in MODELS:
    blocks = pair_of("no_bn_he", model)[True]["blocks"]
    growth = (blocks[-1]["out_std"] / blocks[0]["out_std"]) ** (1 / (len(blocks) - 1))
    back = (blocks[0]["input_grad_norm"] / blocks[-1]["input_grad_norm"]) ** (1 / (len(blocks) - 1))
    print(f"no BN, He init, residual {model:9s} ({len(blocks)} blocks): per block, the output std grows by "
          f"{growth:.3f} forward, |dx| by {back:.3f} backward (sqrt 2 = {np.sqrt(2):.3f})")

# %% [markdown]
# Reading the numbers:
#
# - **No BN, PyTorch default init.** The plain net's ratio falls by orders of magnitude with every
#   extra stage of depth: the first layers receive almost nothing. The residual twin stays near 1:
#   the shortcuts carry the gradient past the shrinking branches.
# - **No BN, He init.** The plain net's ratio stays within one or two orders of magnitude of 1 at
#   every depth, where the default init loses tens of orders: with gain 1 per layer nothing
#   vanishes, shortcuts or not. But the residual nets' gradients **explode in absolute size**:
#   their median `|dL/dW|` is about 4e3 at depth 56 and 6e8 at depth 110 (the plain twins':
#   about 4e-3 and 1e-3), and so do their activations (the last block's output std, about 1e3
#   and 2e8) and their loss (about 2e3 and 3e8). Without normalisation a block outputs
#   `relu(x + F(x))`, and with He init the branch `F` passes on about the variance it receives,
#   so each block *adds* its branch's variance to the input's: the variance roughly doubles per
#   block, and the std grows by roughly `√2 ≈ 1.41` per block (the last lines above: 1.26, 1.35
#   and 1.43 at depths 20, 56 and 110). Backward, the same sum adds the branch's part to the
#   gradient at every block, so `|dx|` grows by a similar factor per block towards the input.
#   A weight gradient is an activation (large near the output) times a gradient (large near the
#   input), so every conv gets a similarly huge `|dL/dW|`, and the first/last ratio looks
#   harmless. Nothing vanishes here; everything is too big.
# - **BN, He init.** The plain net's ratio is far *above* 1 and grows roughly exponentially with
#   depth: with batch norm the gradient **explodes** towards the input at initialisation (Yang et
#   al. 2019 show that no choice of initial weight variance removes this). The residual twin's ratio
#   stays within a factor of about 20.
#
# **The remedy at initialisation: start every branch at zero.** nnscratch's models take
# `zero_init_residual=True`, the torchvision ResNets (`models.create("resnet18",
# zero_init_residual=True)`) and the CIFAR family alike (`models.resnet56(zero_init_residual=True)`):
# it sets γ = 0 in the last batch norm of every block (Goyal et al. 2017), so that each block
# starts as `relu(0 + x)` and no block adds variance. It acts only through that batch norm: with
# `batch_norm=False` there is no γ to zero and the flag changes nothing (checked below). Without
# batch norm the same idea zeroes the last conv of each branch instead (Fixup, Zhang et al. 2019;
# SkipInit, De & Smith 2020, multiplies each branch by a scalar that starts at 0). The cell does
# that by hand on the no-BN, He-init residual nets, and measures one forward and backward pass on
# the same batch:

# %%
flagged = models.resnet56(batch_norm=False, zero_init_residual=True, width=WIDTH, seed=0)
unflagged = models.resnet56(batch_norm=False, zero_init_residual=False, width=WIDTH, seed=0)
same = all(np.array_equal(p.data, q.data) for (_, p), (_, q) in zip(flagged.named_parameters(),
                                                                    unflagged.named_parameters(), strict=True))
print(f"without batch norm, zero_init_residual=True leaves every weight unchanged: {same}")

x_batch, y_batch, _ = experiments.fixed_batch(BATCH, dataset="synthetic", labels="data", dtype="float64", seed=0)
print(f"{'no BN, He init, residual':30s}{'loss':>10s}{'logits std':>12s}{'stem |dL/dW|':>14s}{'max |dL/dW|':>13s}")
for model in MODELS[1:]:
    for zero_branch in (False, True):
        net = experiments.build_model(model, residual=True, batch_norm=False, init="he", width=WIDTH,
                                      dtype="float64", seed=0)
        if zero_branch:
            for module in net.modules():
                if isinstance(module, BasicBlock):
                    module.conv2.weight.data[...] = 0  # the branch's last conv: its output is 0
                    module.conv2.bias.data[...] = 0
        criterion = CrossEntropyLoss()
        logits = net(x_batch)
        loss = criterion(logits, y_batch)
        net.backward(criterion.backward())
        conv_grads = [np.linalg.norm(p.grad) for _, p in net.named_parameters() if p.data.ndim == 4]
        label = f"{model}, {'last conv of each branch 0' if zero_branch else 'He init everywhere'}"
        print(f"{label:38s}{loss:>10.3g}{logits.std():>12.3g}{conv_grads[0]:>14.3g}{max(conv_grads):>13.3g}")

# %% [markdown]
# With every branch starting at zero the net is, at initialisation, a stem, a stack of identities
# and a head: the loss is back near ln 10 (2.35 and 2.40) and every `|dL/dW|` is below 1, at both
# depths, where He init everywhere gave 2e3 and 3e8 for the loss. (The branches'
# first convs get no gradient at the first step, since the zero conv after them passes nothing
# back; their last convs do, so the branches switch on as training starts.)
#
# The per-layer factors behind the ratios, compared with the one-layer calculation:

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
# above 1 per layer, which no initialisation removes.
#
# **Why above 1.** Add batch norm to the one-layer calculation: `u = conv(h)`, `h = relu(z_prev)`,
# `z = BN(u)`. Backward, batch norm multiplies the gradient by `γ/σ_B`, where `σ_B` is the batch
# std of its input `u` (it also removes two small projections, negligible here). The conv passes
# the gradient back with `fan_out·σ²`, as before; forward it gives `u` the variance
# `fan_in·σ²·Var(h)`. With `fan_in = fan_out` the weight scale `σ²` cancels, and the gain per layer
# (ReLU keeps half, as before) is
#
# $$\frac{|dz_{prev}|^2}{|dz|^2} \approx \frac{\tfrac12\,\mathrm{fan\_out}\,\sigma^2}{\mathrm{fan\_in}\,\sigma^2\,\mathrm{Var}(h)}
# = \frac{E[h^2]}{\mathrm{Var}(h)} = \frac{\pi}{\pi-1}\quad\Rightarrow\quad \text{gain} \approx 1.21$$
#
# for `z_prev` standard normal (a batch norm's output). The backward pass scales by the root mean
# square of ReLU's output (through the weights), batch norm divides by its *standard deviation*,
# and ReLU's output has a mean, so the second is smaller. Measured on the same 16-channel layer,
# with He's init and with PyTorch's (a weight variance six times smaller):

# %%
gamma, beta = np.ones(C), np.zeros(C)
h_stats = []
for name in ("he", "torch"):
    gains, batch_stds = [], []
    for _ in range(5):
        z_prev = rng.standard_normal((4, C, S, S))  # a batch norm's output: mean 0, std 1
        h, relu_cache = F.relu_forward(z_prev)
        u, conv_cache = F.conv2d_forward(h, draws[name](), padding=1)
        z, bn_cache = F.batch_norm2d_forward(u, gamma, beta, np.zeros(C), np.ones(C), training=True)
        dz = rng.standard_normal(z.shape)
        du, _, _ = F.batch_norm2d_backward(dz, bn_cache)
        dh, _, _ = F.conv2d_backward(du, conv_cache)
        dz_prev = F.relu_backward(dh, relu_cache)
        gains.append(np.linalg.norm(dz_prev) / np.linalg.norm(dz))
        batch_stds.append(u.std(axis=(0, 2, 3)).mean())
        h_stats.append((np.sqrt(np.mean(h**2)), h.std()))
    print(f"{name:6s} batch std of the conv output {np.mean(batch_stds):.3f}, gain per layer with BN {np.mean(gains):.3f}")
rms_h, std_h = np.mean(h_stats, axis=0)
print(f"relu output: root mean square {rms_h:.3f}, std {std_h:.3f}, ratio {rms_h / std_h:.3f}; "
      f"prediction sqrt(pi/(pi-1)) = {np.sqrt(np.pi / (np.pi - 1)):.3f}")

# %% [markdown]
# The gain is the same for both initialisations, about 1.2 against the plain nets' measured
# 1.14–1.16 per layer above (the border pixels, the stride-2 stages and the head are again outside
# the calculation). Compounded over the depth, a factor of this size is the explosion in the table.
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
        # |dy| at a block's output is |dx| at the next block's input. For an identity shortcut
        # (not the first block of layer2/layer3, whose zero-pad shortcut subsamples), |dx_shortcut|
        # is the gradient after the ReLU that follows the `+`.
        masked = [(b["name"], nxt["total"], b["shortcut"]) for b, nxt in zip(blocks[:-1], blocks[1:])
                  if not (b["name"].endswith(".0") and not b["name"].startswith("layer1"))]
        kept = [dsc / dy for _, dy, dsc in masked]
        for name, dy, dsc in masked[-3:]:
            print(f"         {name}: |dy| at the output {dy:.3g}, |dx_shortcut| {dsc:.3g}")
        print(f"         |dx_shortcut| / |dy| over the {len(kept)} identity blocks: median {np.median(kept):.2f}, "
              f"range {min(kept):.2f}-{max(kept):.2f}")

# %% [markdown]
# In the plain net every block multiplies the gradient by the same factor above 1, so `|dx|`
# grows by orders of magnitude from the output to the input. In the residual net each block
# passes the gradient on through its shortcut and *adds* its branch's part, so `|dx|` changes far
# less along the depth. The shortcut's share is largest in the blocks near the output.
#
# The shortcut does **not** carry the gradient unchanged in this block, though. nnscratch's
# `BasicBlock` is the original *post-activation* block, `relu(F(x) + x)`: the ReLU after the `+`
# zeroes the gradient wherever the sum was negative, before the fan-out, so the shortcut gets
# `relu'(F(x) + x) ⊙ dy`, not `dy`. The printed lines show by how much: in the 24 blocks with an
# identity shortcut, `|dx_shortcut|` is 81–96% of `|dy|` (median 94%); the rest is masked.
# He et al. 2016 ("Identity Mappings in Deep Residual Networks") make exactly this point and move
# the ReLU (and the batch norm) into the branch, before the conv: in that *pre-activation*
# block nothing comes after the `+`, `x_{l+1} = x_l + F(x_l)`, so the shortcut delivers `dy` to
# the block's input unchanged, and from any block to any earlier one the gradient contains the
# later gradient itself as one term.
#
# ## 5. After training starts
#
# Everything above is at initialisation. `gradient_flow(..., steps=k)` first takes `k` SGD steps
# (learning rate 0.1, momentum 0.9, batch norm, He init: the setting of notebook 06) and then
# measures the same ratio on the same fixed batch. Single precision is enough here.

# %%
STEPS = (0, 3) if FAST else (0, 20, 100)
SEEDS = (1,) if FAST else (1, 2)  # other seeds for the 20-layer nets (another batch, init and data order)
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
print(f"ratio after {STEPS[-1]} steps, other seeds")
for residual in (False, True):
    ratios = [after[f"{'residual' if residual else 'plain'} {MODELS[0]}"][-1]["ratio"]]
    for seed in SEEDS:
        ratios.append(experiments.gradient_flow(MODELS[0], residual=residual, batch_norm=True, init="he",
                                                width=WIDTH, batch_size=BATCH, steps=STEPS[-1], lr=0.1,
                                                dtype="float32", seed=seed)["ratio"])
    print(f"{('residual ' if residual else 'plain ') + MODELS[0]:32s}"
          + "".join(f"{f'seed {s}':>8s}{r:>8.3g}" for s, r in zip((0, *SEEDS), ratios, strict=True)))

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
# about 3 000 to about 0.002 (0.01 after 100 steps): its first layers now receive far *less*
# gradient than its last. The 56-layer residual net's ratio falls too, from about 20 to 0.15
# after 20 steps and 0.06 after 100. The 20-layer nets move less, and the seed decides where they
# end: after 100 steps the residual ResNet-20 is at 2.6 with seed 0 but at 0.17 and 2.4 with seeds
# 1 and 2, the plain one at 0.55, 0.24 and 1.1 (the last two lines), so at this depth even the
# side of 1 is not settled. None of the four has learned this batch yet (after 100 steps every
# loss is within 0.03 of ln 10 ≈ 2.30). What holds: the ratio at initialisation does not say what
# the gradients look like a few steps later, and (with seed 0) of the four nets the deep plain
# one is left with the weakest signal at its first layers. Gradients at initialisation alone,
# exploding or vanishing, do not explain which nets train; notebook 06 trains them.
#
# ## Exercises
#
# Checked in section 1: the one-layer gain (`exercises.check("one_layer_gain", answer)`, a number,
# checked with a tolerance) and `he_std` (compared with the library on conv and linear shapes,
# both modes). The rest are open questions; the notebook's cells are the tools.
#
# 1. Add the `"no_bn_xavier"` regime. Predict the plain ResNet-20's ratio from the Xavier gain
#    (`√(1/2)` per layer) before running it.
# 2. Run `experiments.gradient_flow("resnet56", residual=False, batch_norm=False, init="he")` with
#    `activation="tanh"`. He init assumes ReLU's factor ½: what happens to the gain?
# 3. Add `"bn_torch"` (batch norm with PyTorch's small init). Does the init matter once batch
#    norm is there? Use the one-layer argument to explain.
# 4. In the no-BN cell of section 2, scale each branch's last conv by `1/√(number of blocks)`
#    instead of zeroing it. How do the logits' std and the loss change from ResNet-56 to -110?
# 5. Repeat section 5 with a smaller learning rate (`lr=0.01`) and with another `seed`. Which
#    conclusions survive?

# Source of notebooks/08_identity_mappings.ipynb (build and run: python notebooks/run_notebooks.py).

# %% [markdown]
# # 08 · Identity mappings: the pre-activation block
#
# **What you will learn**
#
# - the original residual block and He et al.'s *pre-activation* block ("Identity Mappings in
#   Deep Residual Networks", 2016): batch norm and ReLU move into the branch, before each
#   convolution, and nothing is left after the `+`;
# - what that buys: unrolled over a stage, `x_L = x_l + Σ F(x_i)`, so the gradient from the top
#   reaches every block as one term of its input gradient, unchanged. You write the block's
#   backward and the unrolled gradient yourself, then we verify the formula on a stage of a real
#   network in float64;
# - the gradient ledger: in every identity block of a pre-activation net the shortcut's part of
#   the input gradient *equals* the gradient arriving from above; in the original net the ReLU
#   after the `+` masks part of it, by an amount that depends on the block and the seed;
# - training the two designs side by side at 56 and 110 layers, with and without batch norm: what
#   a short budget shows, and what it cannot show (the paper's results are cited for that).
#
# Read beside it: `nnscratch/nn/preact_residual.py`, `nnscratch/nn/preact_basic_block.py`,
# `nnscratch/nn/residual.py` (the shared `backward`) and `docs/concepts/residual-block.md`.

# %%
import contextlib
import os
import time
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm, without ipywidgets
from nnscratch import data, exercises, experiments, nn
from nnscratch.plot.figure import new_figure
from nnscratch.training.builders import DataSplits

%matplotlib inline

FAST = os.environ.get("NNSCRATCH_FAST") == "1"  # CI sets this: smaller sizes, same steps
FASHION = Path("/usr/share/datasets/fashion-mnist")  # used if installed (Debian's dataset-fashion-mnist)
if FAST:
    DATASET, N_TRAIN, N_TEST, LEDGER_DEPTH = "synthetic", 400, 100, 14
    DEPTHS, WIDTH, STEPS, BATCH, SEEDS, WINDOW = (14, 20), 0.25, 6, 16, (0, 1), 3
else:
    DATASET = "fashion_mnist" if FASHION.exists() else "synthetic"
    N_TRAIN, N_TEST, LEDGER_DEPTH = 20000, 1000, 56
    DEPTHS, WIDTH, STEPS, BATCH, SEEDS, WINDOW = (56, 110), 0.25, 250, 32, (0, 1, 2), 50
LR = {True: 0.1, False: 0.01}  # with batch norm, without (section 3 says why)
rng = np.random.default_rng(0)
START = time.perf_counter()
print("fast mode" if FAST else "full mode",
      dict(dataset=DATASET, depths=DEPTHS, width=WIDTH, steps=STEPS, batch=BATCH, seeds=SEEDS))

# %% [markdown]
# ## 1. Two blocks, and the gradient of a stack of them
#
# The block of notebook 03 (He et al. 2015), the **original** or *post-activation* block:
#
# $$x_{l+1} = \mathrm{relu}\big(x_l + F(x_l)\big),\qquad
# F(x) = \mathrm{bn}(\mathrm{conv}(\mathrm{relu}(\mathrm{bn}(\mathrm{conv}(x)))))$$
#
# The **pre-activation** block (He et al. 2016) moves batch norm and ReLU in front of each
# convolution and puts nothing after the `+`:
#
# $$x_{l+1} = x_l + F(x_l),\qquad
# F(x) = \mathrm{conv}(\mathrm{relu}(\mathrm{bn}(\mathrm{conv}(\mathrm{relu}(\mathrm{bn}(x))))))$$
#
# The same layers in another order. The library's two blocks list them (`main_path()` is the
# branch `F`, `after_add` what is applied to the sum):

# %%
for label, block in (("original", nn.BasicBlock(4, 4, rng=rng)), ("pre-activation", nn.PreActBasicBlock(4, 4, rng=rng))):
    branch = " -> ".join(type(m).__name__ for m in block.main_path())
    print(f"{label:15s} out = {type(block.after_add).__name__}(x + F(x)),  F = {branch}")

# %% [markdown]
# Backward, the `+` is still a fan-out (notebook 03), but now nothing stands between the
# block's output and the `+`: the gradient from above, `dy`, goes into the branch *and* the
# shortcut as it is. Two details: where the shortcut changes shape (the first block of a
# stage) the first BN-ReLU is applied *before* the split and feeds the shortcut as well
# (`shared_path()` in `nnscratch/nn/residual.py`), as in the net's very first block, which
# follows a lone convolution. **Your turn**: write the block's backward from the backward
# functions of its parts (`exercises.describe("preact_residual_backward")` says exactly what
# each argument is).

# %%
# exercise: preact_residual_backward
def preact_residual_backward(dy, out, pre_backward, branch_backward, shortcut_backward, shared):
    raise NotImplementedError  # shared: pre(x) feeds both sides; else out = branch(pre(x)) + x

# %%
exercises.check("preact_residual_backward", preact_residual_backward)

# %% [markdown]
# **Unrolled.** Take the identity blocks of one stage, from block `l` to block `L`. Since each
# adds its branch to its input, by induction
#
# $$x_L = x_l + \sum_{i=l}^{L-1} F(x_i),\qquad
# \frac{\partial \mathcal{L}}{\partial x_l} = \frac{\partial \mathcal{L}}{\partial x_L}
# \Big(1 + \frac{\partial}{\partial x_l}\sum_{i=l}^{L-1} F(x_i)\Big).$$
#
# The `1` is the point: whatever the branches do, the gradient at the top of the stage arrives at
# its bottom as one term, unchanged (in the original block every level multiplies it by the ReLU's
# 0/1 mask first). Backward computes this one block at a time: with `g` the gradient at a block's
# output, the block passes back `g + (∂F_i/∂x_i)ᵀ g`, and the branch parts pile up on the way
# down, so `dL/dx_l − dL/dx_L` is the sum of each branch's part, each taken at the gradient that
# reached *its* output. **Your turn** again: write that loop.

# %%
# exercise: unrolled_gradient
def unrolled_gradient(d_top, branch_backwards):
    raise NotImplementedError  # from the top block down: g = g + branch_backwards[i](g)

# %%
exercises.check("unrolled_gradient", unrolled_gradient)

# %% [markdown]
# Now on a real network, in float64: a PreAct ResNet of the depth below, one batch of the
# lesson's data, the real cross-entropy loss. The helper runs the net piece by piece (the stages'
# blocks one by one), keeping every piece's input and the gradients at its input and output. In
# the second stage, `x_l` is the input of its first identity block (`layer2.1`; `layer2.0` changes
# shape) and `x_L` the stage's output. Each branch's part is measured on its own: the block is run
# again with `route = "main"`, which sends the backward through the branch only, fed with the
# gradient that reached that block's output.

# %%
def half_size(dataset, n, rng):
    """n random images of ``dataset`` at half the height and width (each 2x2 patch averaged)."""
    dataset = dataset.subset(rng.permutation(len(dataset))[:n])
    N, C, H, W = dataset.images.shape
    small = dataset.images[:, :, : H // 2 * 2, : W // 2 * 2].reshape(N, C, H // 2, 2, W // 2, 2).mean(axis=(3, 5))
    return data.ArrayDataset(np.rint(small).astype(np.uint8), dataset.labels, list(dataset.classes), dataset.source)


full = experiments.load_splits(DATASET, n_train=N_TRAIN, n_test=N_TEST, seed=0)
data_rng = np.random.default_rng(0)
train_set = half_size(full.train, N_TRAIN, data_rng)
test_set = half_size(full.test, N_TEST, data_rng)
mean, std = data.channel_stats(train_set.images)
splits = DataSplits(train_set, None, test_set, np.asarray(mean), np.asarray(std))
CHANNELS, CLASSES = train_set.images.shape[1], train_set.num_classes
x_fixed = data.normalize(train_set.images[:16], mean, std)  # one fixed batch for sections 1 and 2
y_fixed = train_set.labels[:16]
print(f"{DATASET}: {len(train_set):,} training and {len(test_set):,} test images of shape "
      f"{train_set.images.shape[1:]} (full size {full.train.images.shape[1:]}), {CLASSES} classes")


def pieces_of(net):
    """The net's modules in forward order, each stage's blocks listed one by one."""
    pieces = []
    for module in [*net.backbone(), net.flatten, net.fc]:
        pieces += list(module) if isinstance(module, nn.Sequential) else [module]
    return pieces


def forward_backward(net, x, y):
    """One training-mode forward and backward, piece by piece: per piece its input ``x``, its
    output ``y``, and the gradients ``dy`` (at its output) and ``dx`` (at its input)."""
    net.train()
    criterion = nn.CrossEntropyLoss()
    records, h = [], x
    for piece in pieces_of(net):
        out = piece(h)
        records.append({"piece": piece, "x": h, "y": out})
        h = out
    loss = criterion(h, y)
    g = criterion.backward()
    for record in reversed(records):
        record["dy"] = g
        g = record["piece"].backward(g)
        record["dx"] = g
    return loss, {id(r["piece"]): r for r in records}


def unrolled_check(net, x, y, stage="layer2"):
    """dL/dx_l - dL/dx_L and the sum of the branches' parts over the stage's identity blocks."""
    _, records = forward_backward(net, x, y)
    blocks = list(getattr(net, stage))[1:]
    bottom, top = records[id(blocks[0])], records[id(blocks[-1])]
    parts = []
    for block in blocks:
        record = records[id(block)]
        block.route = "main"  # the branch alone
        block(record["x"])
        parts.append(block.backward(record["dy"]))
        block.route = None
    return bottom["dx"] - top["dy"], sum(parts), bottom["dx"], top["dy"], len(blocks)


for family, label in (("preact_resnet", "pre-activation"), ("resnet", "original")):
    net = experiments.build_model(f"{family}{LEDGER_DEPTH}", width=WIDTH, in_channels=CHANNELS,
                                  num_classes=CLASSES, dtype="float64", seed=0)
    difference, branch_sum, d_bottom, d_top, count = unrolled_check(net, x_fixed.astype(np.float64), y_fixed)
    gap = np.abs(difference - branch_sum).max()
    print(f"{label} {LEDGER_DEPTH}, layer2, {count} identity blocks: |dL/dx_l| = {np.linalg.norm(d_bottom):.4g}, "
          f"|dL/dx_L| = {np.linalg.norm(d_top):.4g}, |sum of branch parts| = {np.linalg.norm(branch_sum):.4g}")
    print(f"    max |(dL/dx_l - dL/dx_L) - sum of branch parts| = {gap:.2e}  "
          f"({gap / np.abs(difference).max():.1e} of max |dL/dx_l - dL/dx_L|)")

# %% [markdown]
# In the pre-activation net the two sides agree to about 1e-18, float64 rounding (2e-16 of the
# size of `dL/dx_l − dL/dx_L`): over the stage's 8 identity blocks, `dL/dx_l` is `dL/dx_L` plus
# the branches' parts and nothing else. Mind the sizes: here the top gradient (0.016) is the
# smaller term and the branches add most of `|dL/dx_l|` (0.093). The `1` does not make the
# gradient large; it guarantees that the top gradient is in it. In the original net the same
# bookkeeping fails, with a gap as large as the difference itself (1.1 times): its shortcut hands
# down `relu'(x + F(x)) ⊙ dy`, not `dy`, at every block.
#
# ## 2. The ledger: what the shortcut carries
#
# Every residual block can record its *gradient ledger* (`record_grad_ledger = True`): the norm of
# the gradient arriving from above, `|dy|`, and of the two parts of its input gradient, the
# branch's `|dx_main|` and the shortcut's `|dx_shortcut|`. For an identity block with nothing
# after the `+`, `dx_shortcut` *is* `dy`, so the ratio `|dx_shortcut| / |dy|` must be exactly 1.
# In the original block `dx_shortcut = relu'(x + F(x)) ⊙ dy`: the entries where the sum was
# negative are zeroed, and the ratio is below 1. Measured on both nets at initialisation (batch
# norm, He init, training mode, the fixed batch, float64), for three seeds (other initial weights):

# %%
def ledger_rows(net, x, y):
    """Per residual block: its name, kind, |dx_shortcut| / |dy|, and the share of its output's
    entries that are positive."""
    names = {id(m): name for name, m in net.named_modules()}
    blocks = [m for m in net.modules() if isinstance(m, nn.ResidualBlock)]
    for block in blocks:
        block.record_grad_ledger = True
    _, records = forward_backward(net, x, y)
    rows = []
    for block in blocks:
        kind = ("changes shape" if block.downsample is not None
                else "shared BN-ReLU" if block.shared_path() else "identity")
        ledger = block.grad_ledger
        rows.append({"name": names[id(block)], "kind": kind, "ratio": ledger["shortcut"] / ledger["above"],
                     "positive": float(np.mean(records[id(block)]["y"] > 0))})
        block.record_grad_ledger = False
    return rows


LEDGER_SEEDS = SEEDS
ledgers = {}
for family in ("resnet", "preact_resnet"):
    for seed in LEDGER_SEEDS:
        net = experiments.build_model(f"{family}{LEDGER_DEPTH}", width=WIDTH, in_channels=CHANNELS,
                                      num_classes=CLASSES, dtype="float64", seed=seed)
        ledgers[family, seed] = ledger_rows(net, x_fixed.astype(np.float64), y_fixed)

print(f"|dx_shortcut| / |dy| per block, seed 0 (* changes shape, s: BN-ReLU shared with the shortcut)")
for stage in ("layer1", "layer2", "layer3"):
    for family, label in (("resnet", "original"), ("preact_resnet", "pre-activation")):
        rows = [r for r in ledgers[family, 0] if r["name"].startswith(stage)]
        marks = {"changes shape": "*", "shared BN-ReLU": "s", "identity": " "}
        print(f"{stage} {label:15s}" + " ".join(f"{r['ratio']:.3f}{marks[r['kind']]}" for r in rows))

# %%
print(f"{'identity blocks only':32s}{'seed':>5s}{'blocks':>7s}{'min':>8s}{'median':>8s}{'max':>8s}"
      f"{'exactly 1':>11s}")
for family, label in (("resnet", "original"), ("preact_resnet", "pre-activation")):
    for seed in LEDGER_SEEDS:
        ratios = np.array([r["ratio"] for r in ledgers[family, seed] if r["kind"] == "identity"])
        print(f"{label:32s}{seed:5d}{len(ratios):7d}{ratios.min():8.4f}{np.median(ratios):8.4f}{ratios.max():8.4f}"
              f"{np.sum(ratios == 1.0):>8d} of {len(ratios)}")
post_identity = [[r for r in ledgers["resnet", s] if r["kind"] == "identity"] for s in LEDGER_SEEDS]
medians = [np.median([r["ratio"] for r in rows]) for rows in post_identity]
per_block = np.array([[r["ratio"] for r in rows] for rows in post_identity])  # (seeds, blocks)
print(f"original: median ratio over seeds {min(medians):.3f}-{max(medians):.3f}; the same block's ratio "
      f"moves by up to {np.ptp(per_block, axis=0).max():.3f} between seeds (median {np.median(np.ptp(per_block, axis=0)):.3f})")
ratio_sq = np.array([r["ratio"] ** 2 for rows in post_identity for r in rows])
positive = np.array([r["positive"] for rows in post_identity for r in rows])
print(f"original: ratio^2 vs the share of positive entries of the block's output, over all "
      f"{len(positive)} identity blocks: mean {ratio_sq.mean():.3f} vs {positive.mean():.3f}, "
      f"largest gap {np.abs(ratio_sq - positive).max():.3f}")

# %%
fig, ax = new_figure(9, 4)
for family, label, colour, marker in (("resnet", "original (ReLU after the +)", "C3", "o"),
                                      ("preact_resnet", "pre-activation (nothing after the +)", "C0", "s")):
    for seed in LEDGER_SEEDS:
        rows = ledgers[family, seed]
        index = np.arange(len(rows))
        ratios = np.array([r["ratio"] for r in rows])
        identity = np.array([r["kind"] != "changes shape" for r in rows])
        ax.plot(index, ratios, color=colour, lw=1.5 if seed == 0 else 0.8, alpha=1 if seed == 0 else 0.45,
                label=f"{label}, seed 0" if seed == 0 else f"{label}, seeds {LEDGER_SEEDS[1:]}" if seed == LEDGER_SEEDS[1] else None)
        ax.plot(index[identity], ratios[identity], marker, color=colour, ms=4 if seed == 0 else 3,
                alpha=1 if seed == 0 else 0.45, ls="none")
        ax.plot(index[~identity], ratios[~identity], marker, mfc="white", color=colour, ms=6, ls="none")
names = [r["name"] for r in ledgers["resnet", 0]]
for i, name in enumerate(names):
    if name.endswith(".0") and i > 0:
        ax.axvline(i - 0.5, color="grey", lw=0.8, ls=":")
ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
ax.set(xlabel="block (hollow markers: the shortcut changes shape)", ylabel="|dx_shortcut| / |dy|",
       title=f"What the shortcut passes on, per block: depth {LEDGER_DEPTH} at initialisation, batch norm")
ax.set_ylim(0, 1.08)
ax.grid(alpha=0.3)
ax.legend(fontsize=8, loc="lower left")
fig

# %% [markdown]
# In the pre-activation net the ratio is 1 to the last bit (the shortcut's part *is* the array
# `dy`) in all 24 identity blocks, for every seed, and in the net's first block too, whose BN-ReLU
# is shared (the ledger measures the shortcut's part before the shared BN-ReLU's backward). In the
# original net it lies between 0.81 and 0.96 over the 25 identity blocks, with medians of
# 0.932–0.937 over the three seeds. One block's ratio moves by at most 0.029 from seed to seed,
# so its pattern belongs to the architecture at initialisation, not to one draw: lowest in the
# first blocks of each stage (with seed 0: 0.83 and 0.88 in layer1, 0.89 in layer2, 0.91 in
# layer3), 0.90–0.96 further on. Roughly, the squared ratio follows the share of the block's outputs that
# are positive (0.86 against 0.79 on average), not exactly, since the gradient is not independent
# of where the ReLU is open.
#
# The blocks that change shape (hollow markers) pass less in both designs, for another reason:
# their zero-padding shortcut keeps the gradient of the input's channels only, half of the
# output's, so about `√½ ≈ 0.71` of the norm (0.61–0.74 with seed 0).
#
# ## 3. Training them
#
# He et al. compared the designs by training them. Here on an equal footing: the original and
# the pre-activation net of a depth are built from the same seed, so their convolutions and their
# classifier start from the same weights (checked below), and they train on the same batches in
# the same order (`train_steps` with the same seed). The data: Fashion-MNIST when it is installed
# (the synthetic set otherwise; the first cell printed which), at half size to fit the budget
# (14 × 14, each 2 × 2 patch averaged), 20 000 random training images and 1 000 test images.
# Each run takes 250 SGD steps of 32 images (8 000 images, each seen at most once), momentum 0.9,
# weight decay 1e-4, a constant learning rate, no augmentation, width 0.25 (4, 8 and 16
# channels). With batch norm: learning rate 0.1 and He init, He et al.'s setting. Without batch
# norm, first what happens if nothing else changes:

# %%
def zero_branches(net):
    """Make every residual branch output 0: zero its last convolution (weight and bias)."""
    for block in net.modules():
        if isinstance(block, nn.ResidualBlock):
            last = [m for m in block.main_path() if isinstance(m, nn.Conv2d)][-1]
            last.weight.data[...] = 0
            if last.bias is not None:
                last.bias.data[...] = 0
    return net


@contextlib.contextmanager
def quiet_overflow():
    """No overflow warnings from a diverging net (np.errstate covers this thread only, and the
    convolutions run on one thread per core)."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def build(family, depth, batch_norm, seed, zero_branch):
    net = experiments.build_model(f"{family}{depth}", batch_norm=batch_norm, width=WIDTH, in_channels=CHANNELS,
                                  num_classes=CLASSES, seed=seed)
    return zero_branches(net) if zero_branch else net


FAMILIES = {"resnet": "original", "preact_resnet": "pre-activation"}
for batch_norm in (True, False):
    post, pre = (build(f, DEPTHS[0], batch_norm, 0, False) for f in FAMILIES)
    pre_params = dict(pre.named_parameters())
    shared = [(name, p) for name, p in post.named_parameters() if "conv" in name or "fc" in name]
    same = all(np.array_equal(p.data, pre_params[name].data) for name, p in shared)
    print(f"{'with' if batch_norm else 'without'} batch norm: the {len(shared)} conv and fc tensors of the "
          f"original and the pre-activation net {DEPTHS[0]} are equal at seed 0: {same}")

print("without batch norm, He init as it is, lr 0.01:")
for depth in DEPTHS:
    for family, label in FAMILIES.items():
        net = build(family, depth, False, 0, False)
        with quiet_overflow():
            logits = net(x_fixed)
            curves = experiments.train_steps(net, splits, steps=min(STEPS, 20), batch_size=BATCH, lr=LR[False],
                                             crop=0, flip=False, final_eval=False, seed=0)
        end = (f"diverged (loss not finite) at step {curves['diverged_at']}" if curves["diverged_at"]
               else f"loss {curves['train_loss'][-1]:.3g} after {len(curves['train_loss'])} steps")
        print(f"    {label:15s} {depth:4d} layers: logits std at step 0 {logits.std():.3g}, "
              f"first loss {curves['train_loss'][0] if curves['train_loss'] else float('nan'):.3g}, {end}")

# %% [markdown]
# Without batch norm nothing holds the activations' scale, and with He init each block adds its
# branch's variance to its input's (notebook 04): the 56-layer nets' logits start with std 176
# (original) and 27 (pre-activation), the 110-layer nets' with 1.3e6 and 2.6e4. Both 110-layer
# nets diverge at the second step, the original 56 is at a loss of 1.8e3 after 20 steps, and only
# the pre-activation 56 is back at chance (2.31). That is notebook 04's scale problem, not a
# comparison of where the ReLU sits.
#
# So the nets without batch norm start with every branch at zero, the remedy of notebook 04 (as in
# Fixup and SkipInit): the last convolution of each branch, weight and bias, is set to 0, and each
# net starts as its stem, a stack of identities (zero-padded where the shape changes) and its
# head. The original and the pre-activation net then compute the same function at step 0 (the
# equal stds and first losses in the table below), so any difference between them comes from
# training. Their learning rate is 0.01, ten times lower than with batch norm, chosen, not tuned:
# nothing normalises the branches as they grow from zero, and He et al. (2015) started even their
# batch-norm ResNet-110 at 0.01 because 0.1 was too large for it to start converging.
#
# The 8 runs with seed 0, the 4 with batch norm again with seeds 1 and 2, and the no-BN pair of
# the smaller depth with seed 1 (training loss on each batch before its step; test error on the
# 1 000 test images after the last step, in eval mode):

# %%
# seed 0: all 8 runs; the other seeds repeat the runs with batch norm, and the smaller depth without it once
CONFIGS = ([(0, bn, depth) for bn in (True, False) for depth in DEPTHS]
           + [(seed, True, depth) for seed in SEEDS[1:] for depth in DEPTHS] + [(SEEDS[1], False, DEPTHS[0])])


def top_stds(net, x):
    """Std of the last block's output and of what the pooling receives, and the logits' std
    (training mode; the batch norms' running statistics are put back afterwards)."""
    state = {name: value.copy() for name, value in net.state_dict().items()}
    h = x
    for module in net.backbone()[:-1]:  # up to the pooling
        h = module(h)
        if module is net.layer3:
            last_block = float(h.std())
    stds = last_block, float(h.std()), float(net(x).std())
    net.load_state_dict(state)
    return stds


runs = []
train_start = time.perf_counter()
for seed, batch_norm, depth in CONFIGS:
    for family, label in FAMILIES.items():
        net = build(family, depth, batch_norm, seed, zero_branch=not batch_norm)
        with quiet_overflow():  # a diverging run overflows before it stops
            stds = top_stds(net, x_fixed)
            curves = experiments.train_steps(net, splits, steps=STEPS, batch_size=BATCH, lr=LR[batch_norm],
                                             crop=0, flip=False, seed=seed)
        runs.append({"family": family, "label": label, "depth": depth, "batch_norm": batch_norm,
                     "seed": seed, "curves": curves, "net": net if seed == 0 else None, "stds": stds})
print(f"{len(runs)} runs of {STEPS} steps in {time.perf_counter() - train_start:.0f} s")


def summary(run):
    curves = run["curves"]
    losses = curves["train_loss"]
    if curves["diverged_at"]:
        return f"diverged at step {curves['diverged_at']}"
    return (f"first loss {losses[0]:6.3f}, last {WINDOW} steps {np.mean(losses[-WINDOW:]):6.3f}, "
            f"test error {curves['eval'][-1]['test_error']:6.1%}")


print(f"{'step 0, std of:':28s}{'last block':>11s}{'pool input':>11s}{'logits':>8s}  "
      "training loss on the batches (before each step), test error after")
for run in runs:
    if run["seed"] == 0:
        name = f"{run['label']} {run['depth']}, {'BN' if run['batch_norm'] else 'no BN'}"
        print(f"{name:28s}{run['stds'][0]:11.3g}{run['stds'][1]:11.3g}{run['stds'][2]:8.3g}  {summary(run)}")

# %%
def smooth(values, window):
    values = np.asarray(values, dtype=float)
    window = max(1, min(window, len(values)))
    return np.convolve(values, np.ones(window) / window, mode="valid")


fig, axes = new_figure(11, 7, nrows=2, ncols=2, sharex=True)
colours = {"resnet": "C3", "preact_resnet": "C0"}
for row, batch_norm in enumerate((True, False)):
    for col, depth in enumerate(DEPTHS):
        ax = axes[row, col]
        for run in runs:
            if run["batch_norm"] != batch_norm or run["depth"] != depth:
                continue
            curves, seed = run["curves"], run["seed"]
            loss = smooth(curves["train_loss"], WINDOW // 2)
            steps = np.arange(len(loss)) + WINDOW // 2
            others = [r["seed"] for r in runs if r["seed"] and r["batch_norm"] == batch_norm and r["depth"] == depth
                      and r["family"] == run["family"]]
            label = (f"{run['label']}, seed 0" if seed == 0
                     else f"{run['label']}, seed{'s' * (len(others) > 1)} {', '.join(map(str, others))}" if seed == others[0] else None)
            ax.plot(steps, loss, color=colours[run["family"]], lw=1.6 if seed == 0 else 0.8,
                    alpha=1 if seed == 0 else 0.5, label=label)
            if curves["diverged_at"]:
                ax.plot(curves["diverged_at"], 2.3, "x", color=colours[run["family"]], ms=10, mew=2,
                        label=f"{run['label']}: diverged at step {curves['diverged_at']}")
        ax.axhline(np.log(CLASSES), color="grey", lw=0.8, ls=":", label=f"ln {CLASSES} (chance)")
        ax.set(title=f"{depth} layers, {'batch norm, lr 0.1, He init' if batch_norm else 'no batch norm, lr 0.01, He init, branches start at 0'}",
               xlabel="SGD step", ylabel=f"training loss (mean of {WINDOW // 2} steps)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
fig.suptitle(f"Original vs pre-activation ResNets: {DATASET}, width {WIDTH}, batch {BATCH}, same weights and batches")
fig

# %% [markdown]
# **With batch norm** the clearest difference is at the start. The original nets begin far above
# chance (first loss 3.4 and 3.6 at 56 and 110 layers), the pre-activation nets at chance (2.3).
# That is the head rather than the shortcut: the pre-activation net ends with `final_bn →
# final_relu` before the pooling, so its classifier receives normalised features (std 0.63 and
# 0.61), while the original net pools the output of its last block, the identity path plus every
# branch added on the way (std 2.5 and 3.5), and its logits start 5 and 8 times larger (all
# with seed 0).
# At 56 layers the original catches up within the budget; at 110 layers, with seed 0, it is still
# 0.5 above the pre-activation net at the end (last 50 steps: 1.47 against 0.96), with a test
# error of 61.5% against 41.3%.
#
# **Without batch norm** the twins start as the same function, their curves lie on top of each
# other at first and then drift apart; with seed 0 the pre-activation net ends lower at both
# depths (1.20 against 1.33 at 56 layers, 1.71 against 1.76 at 110), by less than the spread
# between seeds measured next. One seed is one draw of the weights and the batches; the next cell
# repeats the runs with batch norm (three seeds) and the no-BN 56 pair (two).

# %%
def final_loss(run):
    curves = run["curves"]
    return np.nan if curves["diverged_at"] else float(np.mean(curves["train_loss"][-WINDOW:]))


print(f"training loss, mean of the last {WINDOW} steps, per seed")
print(f"{'':30s}" + "".join(f"{f'seed {s}':>9s}" for s in SEEDS) + f"{'mean':>9s}{'range':>9s}")
for batch_norm in (True, False):
    for depth in DEPTHS:
        finals = {}
        for family, label in FAMILIES.items():
            finals[family] = {r["seed"]: final_loss(r) for r in runs
                              if r["batch_norm"] == batch_norm and r["depth"] == depth and r["family"] == family}
        if len(finals["resnet"]) < 2:
            continue
        rows = [(f"{label} {depth}, {'BN' if batch_norm else 'no BN'}", finals[family]) for family, label in FAMILIES.items()]
        rows.append(("  original - pre-activation", {s: finals["resnet"][s] - finals["preact_resnet"][s] for s in finals["resnet"]}))
        for name, values in rows:
            v = np.array(list(values.values()))
            print(f"{name:30s}" + "".join(f"{values[s]:9.3f}" if s in values else f"{'-':>9s}" for s in SEEDS)
                  + f"{np.mean(v):9.3f}{np.ptp(v):9.3f}")
print(f"test error ({N_TEST} images) after the last step, batch norm, per seed:")
for depth in DEPTHS:
    for family, label in FAMILIES.items():
        errors = [r["curves"]["eval"][-1]["test_error"] for r in runs
                  if r["batch_norm"] and r["depth"] == depth and r["family"] == family and r["curves"]["eval"]]
        print(f"{label + ' ' + str(depth):30s}" + "".join(f"{e:9.1%}" for e in errors))
print("training loss in the first 10 steps (mean), batch norm, per seed:")
for depth in DEPTHS:
    for family, label in FAMILIES.items():
        firsts = [np.mean(r["curves"]["train_loss"][:10]) for r in runs
                  if r["batch_norm"] and r["depth"] == depth and r["family"] == family]
        logit_stds = [r["stds"][2] for r in runs if r["batch_norm"] and r["depth"] == depth and r["family"] == family]
        print(f"{label + ' ' + str(depth):30s}" + "".join(f"{v:9.3f}" for v in firsts)
              + "   logits std at step 0: " + ", ".join(f"{v:.2f}" for v in logit_stds))

# %% [markdown]
# - **56 layers, batch norm**: the pre-activation net's early lead does not last. After 250 steps
#   the original is lower in all three seeds, by 0.02–0.12 (mean 0.08); each design's own spread
#   over seeds is 0.07–0.09.
# - **110 layers, batch norm**: the pre-activation net ends lower in two seeds (by 0.51 and 0.21)
#   and 0.03 higher in the third. What holds in all three is the start (the original's first 10
#   steps average 4.0–5.2, the pre-activation net's 2.2–2.3) and the spread: the three
#   pre-activation runs end within 0.05 of each other, the three original runs 0.55 apart, as the
#   original recovers from its bad start sooner or later.
# - **56 layers, no batch norm**: the pre-activation net is lower in both seeds, by 0.14 and 0.03,
#   less than the 0.10–0.20 by which one design moves between its two seeds.
# - The test errors of single runs (1 000 images) follow the training losses loosely and move a
#   lot between seeds (the original 110: 35.5% to 61.5%).
#
# So, in this budget, the pre-activation nets start at chance where the original nets start
# above it, and at 110 layers train more predictably; they do not train faster at 56 layers, and
# without batch norm the two designs are not distinguishable with two seeds.
#
# ### The ledger after training
#
# The trained nets (seed 0), on the fixed batch (training mode): does the original block's ReLU
# still let most of the gradient through, and is the pre-activation block's ratio still exactly 1?

# %%
print(f"{'identity blocks, after training':36s}{'min':>8s}{'median':>8s}{'max':>8s}{'exactly 1':>12s}")
for run in runs:
    if run["net"] is None or run["curves"]["diverged_at"]:
        continue
    with quiet_overflow():
        rows = ledger_rows(run["net"], x_fixed, y_fixed)
    ratios = np.array([r["ratio"] for r in rows if r["kind"] == "identity"])
    name = f"{run['label']} {run['depth']}, {'BN' if run['batch_norm'] else 'no BN'}"
    print(f"{name:36s}{ratios.min():8.3f}{np.median(ratios):8.3f}{ratios.max():8.3f}{np.sum(ratios == 1.0):>6d} of {len(ratios)}")
print(f"whole notebook so far: {time.perf_counter() - START:.0f} s")

# %% [markdown]
# After training, the pre-activation blocks still pass `dy` on exactly (every identity block,
# 24 of 24 and 51 of 51, with and without batch norm): that is the architecture, not the weights.
# The original blocks' median ratio is 0.97–0.99 (0.93 at initialisation for the 56-layer net
# with batch norm, section 2), so
# most of their ReLUs after the `+` are open; but a few blocks now mask much more: the lowest
# ratio is 0.54 in the original 56 with batch norm, 0.15 in the original 110 (one block passes 15%
# of the gradient's norm through its shortcut), and 0.39 and 0.59 without batch norm.
#
# **What He et al. found, and what this notebook does not reproduce.** They trained on CIFAR-10
# at full width for tens of thousands of steps, with batch norm throughout. The pre-activation nets reached a
# lower test error than the originals, by a little at 110 layers (6.37% against 6.61%) and by
# much at 1001 layers (4.92% against 7.61%), where the original's training loss also fell very
# slowly at the start; they attribute the gain to easier optimisation (the clean identity path,
# which matters more the deeper the net) and to less overfitting (every convolution receives a
# normalised input). Our budget is 250 steps of small nets at 56 and 110 layers: it shows the
# exact identity path (sections 1 and 2), the better and more reproducible start, and no faster
# training at 56 layers. It does not show converged accuracy, and nothing at 1001 layers.
#
# ## Exercises
#
# Checked in section 1: `preact_residual_backward` (the block's backward, on identity and
# shape-changing blocks, against the library's reference and finite differences) and
# `unrolled_gradient` (the gradient through a stack of blocks). The rest are open questions;
# the notebook's cells are the tools.
#
# 1. The original net's bad start comes from its head (section 3). Give it a batch norm before
#    the pooling, as the pre-activation net has (`net.layer3 = nn.Sequential(*net.layer3,
#    nn.BatchNorm2d(16))` at width 0.25), and rerun the 110-layer pair with batch norm. What is left
#    of the difference?
# 2. Rerun the runs without batch norm at learning rates 0.03 and 0.1. Which diverge, and does the
#    design matter for that?
# 3. In the trained original 110 (seed 0) find the block whose shortcut passes only 15% of `|dy|`.
#    What share of its outputs is positive, and what does its branch output look like?
# 4. Double `STEPS` for the 56-layer pair with batch norm. Does the original stay ahead?
# 5. With `route = "shortcut"` on every block of a stage, the backward skips every branch. What is
#    `dL/dx_l` then, in the pre-activation net and in the original one? Check it with
#    `unrolled_check`'s pieces.

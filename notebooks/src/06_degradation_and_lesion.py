# Source of notebooks/06_degradation_and_lesion.ipynb (build and run: python notebooks/run_notebooks.py).

# %% [markdown]
# # 06 · Degradation and lesion
#
# **What you will learn**
#
# - **degradation** (He et al. 2015, Fig. 6): with batch norm, a deeper *plain* network reaches a
#   *higher training error* than a shallower one. In our short budget the 56-layer plain net
#   barely leaves chance while its residual twin, with the same layers and the same initial
#   weights, trains; we repeat it over seeds and look at what its gradients do;
# - why a residual net has it easier: a residual block is the identity as soon as its branch
#   outputs 0, a plain block has to learn the identity;
# - **lesion** (Veit et al. 2016): deleting one block of a trained network at test time. The
#   residual net still has a path around the hole, the plain net does not; we measure how much
#   that helps in a small net.
#
# Read beside it: `nnscratch/experiments/degradation.py`, `nnscratch/experiments/lesion.py`.

# %%
import os
import warnings

import numpy as np

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm, without ipywidgets
from nnscratch import experiments, nn, plot
from nnscratch.experiments.degradation import final_errors
from nnscratch.experiments.lesion import BranchRemoved

%matplotlib inline

FAST = os.environ.get("NNSCRATCH_FAST") == "1"  # CI sets this: smaller sizes, same steps
if FAST:
    DEPTHS, D_WIDTH, D_STEPS, D_BATCH, N_TRAIN, N_TEST = (8, 14), 0.25, 10, 32, 400, 100
    SEEDS = (1,)  # further seeds for the spread of section 2
    L_MODEL, L_WIDTH, L_STEPS, L_BATCH = "resnet8", 0.25, 10, 32
else:
    DEPTHS, D_WIDTH, D_STEPS, D_BATCH, N_TRAIN, N_TEST = (20, 56), 0.25, 400, 64, 10000, 1000
    SEEDS = (1, 2)
    L_MODEL, L_WIDTH, L_STEPS, L_BATCH = "resnet20", 0.25, 400, 64
rng = np.random.default_rng(0)
print("fast mode" if FAST else "full mode", dict(depths=DEPTHS, width=D_WIDTH, steps=D_STEPS))

# %% [markdown]
# ## 1. The identity is easy for a residual block
#
# A deeper net can do everything a shallower one does: let the extra blocks compute the identity.
# For a residual block `relu(branch(x) + x)` that only needs the branch to output 0, which happens
# when its last batch norm has `γ = 0` (`zero_init_residual` starts there). For a non-negative
# input (the previous block's ReLU output) the block is then exactly the identity. A plain block,
# `relu(branch(x))`, would have to fit the identity with two convolutions and two batch norms.

# %%
block = nn.BasicBlock(8, 8, rng=rng).to(np.float64)
block.bn2.weight.data[:] = 0  # the branch now outputs bn2's beta = 0
x = np.abs(rng.standard_normal((4, 8, 6, 6)))
print(f"residual block with gamma2 = 0: max |block(x) - x| = {np.abs(block(x) - x).max():.1e}")

plain = nn.BasicBlock(8, 8, residual=False, rng=rng).to(np.float64)
plain.bn2.weight.data[:] = 0
print(f"plain block with gamma2 = 0:    max |block(x) - x| = {np.abs(plain(x) - x).max():.2f}  (it outputs 0)")

# %% [markdown]
# ## 2. Degradation
#
# `experiments.degradation` trains the plain and the residual CIFAR ResNet of each depth for the
# same number of SGD steps (learning rate 0.1, momentum 0.9, random crops and flips), on the same
# batches in the same order; each twin pair starts from the same weights. Training error is
# measured on each augmented mini-batch (thin lines, smoothed); test error every 50 steps
# (bold).

# %%
result = experiments.degradation(DEPTHS, steps=D_STEPS, batch_size=D_BATCH, width=D_WIDTH,
                                 n_train=N_TRAIN, n_test=N_TEST, eval_every=D_STEPS // 8)
WINDOW = min(50, D_STEPS)
for run in result["runs"]:
    train_error, test_error = final_errors(run, window=WINDOW)
    print(f"{run['label']:12s} ({run['parameters']:,} parameters): training error {train_error:6.1%} "
          f"(last {WINDOW} steps), test error {test_error:6.1%}, {run['seconds']:.0f} s")
print(f"budget: {D_STEPS} steps of {D_BATCH} images = {D_STEPS * D_BATCH / N_TRAIN:.1f} epochs of the "
      f"{N_TRAIN:,} training images, constant learning rate 0.1")

# %%
plot.degradation_figure(result)

# %% [markdown]
# In the full run above (one seed) the 20-layer plain net learns the task in this budget; the
# 56-layer plain net has barely left chance (90% error) after the same number of steps, while the
# 56-layer residual net, with the same layers and the same initial weights, trains. It is not
# overfitting: the *training* error is the high one.
#
# Two questions before calling this degradation. Does it hold for other seeds (other data draw,
# initial weights and batch order)? And is it vanishing gradients after all? Notebook 04 found
# the plain net's gradients *large* at the first layers at initialisation (batch norm makes them
# grow towards the input), but also that this ratio collapses within a few SGD steps. Below, two
# more seeds train the plain nets of both depths and the residual 56, and measure, on one fixed
# batch, `|dL/dW|` of the first conv over that of the last conv, before and after training.

# %%
from nnscratch.experiments.network_parts import conv_layers


def gradient_ratio(model, x, y):
    """|dL/dW| of the first conv / |dL/dW| of the last main-path conv, one batch, train mode."""
    model.train()
    model.zero_grad()
    criterion = nn.CrossEntropyLoss()
    criterion(model(x), y)
    model.backward(criterion.backward())
    main = [conv for _, conv, shortcut in conv_layers(model) if not shortcut]
    first, last = (np.linalg.norm(c.weight.grad.astype(np.float64)) for c in (main[0], main[-1]))
    model.zero_grad()
    return first / last


TWINS = [(DEPTHS[0], False), (DEPTHS[1], False), (DEPTHS[1], True)]
label = {(d, r): f"{'residual' if r else 'plain'}-{d}" for d, r in TWINS}
seed_runs = {key: [] for key in TWINS}
for run in result["runs"]:  # seed 0: the run above (no gradient ratios measured there)
    if (run["depth"], run["residual"]) in seed_runs:
        seed_runs[run["depth"], run["residual"]].append((0, *final_errors(run, window=WINDOW), None, None))
for seed in SEEDS:
    splits = experiments.load_splits(n_train=N_TRAIN, n_test=N_TEST, seed=seed)
    x_fixed, y_fixed, _ = experiments.fixed_batch(64, dtype="float32", seed=seed)
    for depth, residual in TWINS:
        model = experiments.build_model(f"resnet{depth}", residual=residual, width=D_WIDTH,
                                        num_classes=splits.train.num_classes, seed=seed)
        ratio_start = gradient_ratio(model, x_fixed, y_fixed)
        curves = experiments.train_steps(model, splits, steps=D_STEPS, batch_size=D_BATCH, seed=seed)
        seed_runs[depth, residual].append((seed, *final_errors(curves, window=WINDOW), ratio_start,
                                           gradient_ratio(model, x_fixed, y_fixed)))

print(f"{'':12s} {'seed':>4s} {'train error':>12s} {'test error':>11s} {'ratio at step 0':>16s} "
      f"{f'after {D_STEPS}':>12s}")
for key, rows in seed_runs.items():
    for seed, train_error, test_error, r0, r1 in rows:
        ratios = f"{r0:16.3g} {r1:12.3g}" if r0 is not None else f"{'-':>16s} {'-':>12s}"
        print(f"{label[key]:12s} {seed:4d} {train_error:12.1%} {test_error:11.1%} {ratios}")
print(f"training error (last {WINDOW} steps), mean ± std over {len(SEEDS) + 1} seeds, [min, max]:")
for key, rows in seed_runs.items():
    errors = np.array([row[1] for row in rows])
    print(f"  {label[key]:12s} {errors.mean():6.1%} ± {errors.std(ddof=1):5.1%}   "
          f"[{errors.min():.1%}, {errors.max():.1%}]")

# %% [markdown]
# Over the three seeds the picture holds: the 56-layer plain net ends every run near chance,
# while the 20-layer plain net and the 56-layer residual net end far below it (the mean ± std
# lines). The test error of a single run jumps a lot from seed to seed (with a constant learning
# rate of 0.1 the weights and the batch-norm statistics are still moving fast), so compare the
# training errors.
#
# The gradients: at step 0 the deep plain net's ratio is in the thousands, as notebook 04 found;
# after the 400 steps it is below 1 in both seeds, far below in one, while the other nets end
# closer to 1. So "not vanishing gradients" would be too strong: the first layers of the deep
# plain net start with a large gradient and, once training has started, get a small one relative
# to its last layers. What these cells show is the symptom, a deep plain net that does not reduce
# its training error where its residual twin does, not which of the two pictures, gradients or
# a harder optimisation landscape, explains it.
#
# Is it degradation? In He et al. (Fig. 6: 64 000 steps of 128 images, learning rate 0.1
# divided by 10 at 32 000 and 48 000 steps) the plain 56 does converge, to a *higher* training
# error than the plain 20. Our budget is the 2.6 epochs printed above at a constant learning
# rate, in which the plain 56 has barely started: the early, extreme form of the effect (the
# deeper plain net is much slower to train), not the converged gap. Showing that gap would take
# tens of thousands of steps with a decaying learning rate, beyond this notebook's budget.
#
# ## 3. Lesion: delete one block
#
# Deleting block `b` of a trained net means replacing it by what is left without its main branch,
# `relu(shortcut(x))`. In a block that keeps its shape that is the identity (for the non-negative
# input every block receives); in a block that downsamples it is the shortcut alone; a plain block
# that downsamples gets the parameter-free zero-padding map, the least damaging stand-in available.
# Checked on the block from section 1 and on a downsampling one:

# %%
stand_in = BranchRemoved(block)
print(f"{stand_in.method:9s}: max |stand_in(x) - x| = {np.abs(stand_in(x) - x).max():.1e}")
down = nn.BasicBlock(8, 16, 2, shortcut="zero_pad", rng=rng).to(np.float64)
stand_in = BranchRemoved(down)
print(f"{stand_in.method:9s}: max |stand_in(x) - relu(down.downsample(x))| = "
      f"{np.abs(stand_in(x) - np.maximum(down.downsample(x), 0)).max():.1e}")

# %% [markdown]
# `experiments.lesion_study` trains a residual net and its plain twin, then deletes each block in
# turn and measures the test accuracy (batch-norm statistics stay those of the intact net).

# %%
lesions = experiments.lesion_study(L_MODEL, steps=L_STEPS, batch_size=L_BATCH, width=L_WIDTH,
                                   n_train=N_TRAIN, n_test=N_TEST)
print(f"{'accuracy with one block deleted':34s}" + "".join(f"{r['label']:>18s}" for r in lesions["runs"]))
print(f"{'(none: intact)':34s}" + "".join(f"{r['lesion']['baseline_accuracy']:>18.1%}" for r in lesions["runs"]))
for i, row in enumerate(lesions["runs"][0]["lesion"]["blocks"]):
    name = f"{row['name']} ({'changes shape' if row['method'] != 'identity' else 'same shape'})"
    print(f"{name:34s}" + "".join(f"{r['lesion']['blocks'][i]['accuracy']:>18.1%}" for r in lesions["runs"]))

# %%
plot.lesion_figure(lesions)

# %%
print(f"{'after deleting one block':26s} {'min':>6s} {'median':>7s} {'max':>6s}  within 15 points  below 20%")
for r in lesions["runs"]:
    acc = np.array([b["accuracy"] for b in r["lesion"]["blocks"]])
    base = r["lesion"]["baseline_accuracy"]
    print(f"{r['label']:26s} {acc.min():6.1%} {np.median(acc):7.1%} {acc.max():6.1%}  "
          f"{np.sum(base - acc <= 0.15):>7d} of {len(acc)}  {np.sum(acc < 0.2):>6d} of {len(acc)}")
residual_blocks, plain_blocks = (r["lesion"]["blocks"] for r in lesions["runs"])
worse = [(a["name"], a["accuracy"], b["accuracy"]) for a, b in zip(residual_blocks, plain_blocks)
         if a["accuracy"] < b["accuracy"] + 0.1]
print("blocks where the residual net keeps less than 10 points more than the plain one:",
      ", ".join(f"{n} ({a:.1%} vs {b:.1%})" for n, a, b in worse) or "none")

# %% [markdown]
# In this run (one training of each net; we did not repeat it over seeds) both nets are accurate
# intact. Deleting a block costs both of them a lot, and the cost varies much from block to
# block. The residual net stays within 15 points of intact for one block only (the last) and
# keeps more than 75% for three (layer2.1, layer3.1, layer3.2); its median after one deletion is
# the 50.2% printed. The plain net's median is far lower, five of its nine deletions leave it
# below 20%, and without its last block it falls below chance. But the residual net is not more
# robust everywhere: deleting layer1.0, layer1.2 or layer2.0 leaves it with less accuracy than
# the plain net (the printed list). Deleting the first block of the last stage, which changes
# shape, costs both nets most of their accuracy.
# Veit et al. saw small losses for almost every block of a 110-layer ResNet, whose 54 blocks each
# do a small share of the work; these nets have 9 blocks and were trained for 400 steps, so each
# block does more. What this run shows: from layer2.1 on the residual net survives the loss of
# a block much better than the plain one, and its median is far higher; at three of the four
# earliest blocks it does not.
#
#
# ## Exercises
#
# No checked exercise here (the pieces of this lesson are checked in notebooks 01–05); these are
# experiments to run with the cells above.
#
# 1. Run the degradation experiment without batch norm (`batch_norm=False, init="torch"`): which
#    net fails now, and is that degradation or vanishing gradients (notebook 04)?
# 2. Add depth 32 (`DEPTHS = (20, 32, 56)`). Does the plain nets' training error rise steadily
#    with depth?
# 3. Start the residual nets with `zero_init_residual=True` (build them with
#    `models.resnet20(zero_init_residual=True)` and train with `experiments.train_steps`). Does it
#    help in this short budget?
# 4. Lesion the residual net after half the steps and after all of them: does the net rely on
#    single blocks more or less as training goes on?
# 5. Delete two adjacent blocks of the residual net at once (use `BranchRemoved` on both). Is the
#    drop the sum of the single drops?

# Source of notebooks/09_paths_and_shattered_gradients.ipynb (build and run: python notebooks/run_notebooks.py).

# %% [markdown]
# # 09 · Paths and shattered gradients
#
# Notebook 04 asked whether residual nets train because their gradients do not vanish, and found
# that with batch norm a plain net's gradients do not vanish either; notebook 06 saw a deep plain
# net fail to train where its residual twin did, and a residual net survive the loss of a block
# better than a plain one. This notebook looks at two more explanations of why residual nets
# train, each from a paper, and measures what each claims on our own small nets.
#
# **What you will learn**
#
# - **paths** (Veit et al. 2016, "Residual networks behave like ensembles of relatively shallow
#   networks"): the backward pass of n residual blocks is *exactly* a sum over 2^n paths, one per
#   choice of branch or shortcut at each block. Their lengths follow a binomial distribution, so
#   most paths are of middle length; Veit et al. found that in a deep net the gradient one path
#   carries shrinks fast with its length, so that the gradient comes mostly from the shorter
#   paths. You check the identity on a small net, measure the gradient per path length in a
#   9-block and a 27-block net (the two disagree), and delete and swap blocks of trained nets;
# - **shattered gradients** (Balduzzi et al. 2017, "The shattered gradients problem: if resnets
#   are the answer, then what is the question?"): follow the input gradient of a network along a
#   line of inputs. In a deep plain net with batch norm it is white noise, each point's gradient
#   unrelated to its neighbour's; in a residual net it stays correlated. You measure its
#   autocorrelation at four depths, over three seeds.
#
# Read beside it: `nnscratch/experiments/paths.py`, `nnscratch/experiments/shattered.py`, and the
# `route` attribute of `nnscratch/nn/residual.py`'s `ResidualBlock`.

# %%
import math
import os
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm, without ipywidgets
from nnscratch import exercises, experiments, plot
from nnscratch.experiments import paths, shattered
from nnscratch.experiments.network_parts import residual_blocks
from nnscratch.plot.figure import new_figure
from nnscratch.training import builders

%matplotlib inline

FAST = os.environ.get("NNSCRATCH_FAST") == "1"  # CI sets this: smaller sizes, same steps
if FAST:
    P_MODEL, P_WIDTH, P_STEPS, P_BATCH, N_TRAIN, N_TEST = "resnet8", 0.25, 10, 32, 400, 100
    SAMPLES, DRAWS, MAX_SWAPS, IMAGES = 4, 2, 2, 16
    DEEP_MODEL, DEEP_STEPS, DEEP_SAMPLES, DEEP_IMAGES = "resnet14", 5, 3, 8
    SH_DEPTHS, SH_SEEDS, SH_POINTS, SH_WIDTH = (8, 20), (0, 1, 2), 64, 0.25
else:
    P_MODEL, P_WIDTH, P_STEPS, P_BATCH, N_TRAIN, N_TEST = "resnet20", 0.25, 400, 64, 10000, 1000
    SAMPLES, DRAWS, MAX_SWAPS, IMAGES = 24, 6, 4, 64
    DEEP_MODEL, DEEP_STEPS, DEEP_SAMPLES, DEEP_IMAGES = "resnet56", 200, 12, 32
    SH_DEPTHS, SH_SEEDS, SH_POINTS, SH_WIDTH = (8, 20, 56, 110), (0, 1, 2), 256, 0.5
rng = np.random.default_rng(0)
START = time.perf_counter()
print("fast mode" if FAST else "full mode",
      dict(paths_model=P_MODEL, steps=P_STEPS, shattered_depths=SH_DEPTHS, seeds=SH_SEEDS))

# %% [markdown]
# ## 1. Unrolling: n blocks, 2^n paths
#
# A residual block computes `y = relu(f(x) + s(x))`: the branch `f` (conv, BN, ReLU, conv, BN) and
# the shortcut `s` (the identity, or zero padding where the shape changes). Notebook 03 turned the
# `+` into a fan-out: the backward sends the same gradient `d = relu'(·) ⊙ dy` into both sides and
# adds what comes back. Written with Jacobians at the current input, one block's backward is
#
# `dx = (J_f + J_s)ᵀ m ⊙ dy`,  with `m` the ReLU's mask,
#
# and n blocks in a row multiply n such sums. Multiplying out, every term picks one side at every
# block: `2^n` terms, the **paths** through the unrolled net. A path that takes the branch of `k`
# blocks and the shortcut of the other `n − k` has **length** `k` (its number of branch layers is
# 2k). This is exact for the backward pass (the forward pass is not a sum of paths: the ReLU
# after each `+` mixes them); it is how Veit et al. read a residual net, as an ensemble of paths
# of many lengths, where a plain net is one path of length n.
#
# **Your turn.** How many of the `2^n` paths have each length `k = 0..n`?

# %%
# exercise: path_length_counts
def path_length_counts(n):
    raise NotImplementedError  # counts[k] for k = 0..n: how many paths take exactly k branches

# %%
exercises.check("path_length_counts", path_length_counts)

# %% [markdown]
# `paths.path_length_distribution(n)` is the library's answer. For the 54 blocks of the CIFAR
# ResNet-110, the net of Veit et al.'s experiments:

# %%
dist = paths.path_length_distribution(54)
counts, lengths = np.array(dist["count"], dtype=float), np.arange(55)
mean = float(np.dot(lengths, dist["probability"]))
std = math.sqrt(float(np.dot((lengths - mean) ** 2, dist["probability"])))
print(f"ResNet-110: 54 blocks, {sum(dist['count']):.3e} paths (2^54); lengths Binomial(54, 1/2): "
      f"mean {mean:.1f}, std {std:.2f}")
for a, b in [(27, 27), (19, 35), (5, 17)]:
    share = counts[a : b + 1].sum() / counts.sum()
    print(f"  paths of length {a:2d}..{b:2d}: {counts[a : b + 1].sum():.3e}, {share:7.2%} of all paths")

# %% [markdown]
# Almost every path is of middle length: 98% of them pass through 19 to 35 branches, and the
# single most common length, 27, alone holds 10.8% of all paths. Veit et al. report that most of
# ResNet-110's gradient comes from paths 10 to 34 layers deep, that is through 5 to 17 blocks'
# branches: by the binomial above, 0.45% of its paths. We measure the same kind of curve on
# smaller nets in section 3.
#
# ## 2. One path at a time, and the exact sum
#
# A block's `route` attribute picks what its backward goes through: `"main"` (the branch only),
# `"shortcut"` (the shortcut only) or `None` (both: the ordinary backward). Setting it on every
# block sends the backward along one path. First, on bare functions: `backwards[i]` is block `i`'s
# pair `(branch_backward, shortcut_backward)`, each going from the block's output to its input
# through one side (the ReLU included); `path[i]` is `True` where the path takes the branch.

# %%
# exercise: routed_gradient
def routed_gradient(dy, backwards, path):
    raise NotImplementedError  # last block first; at block i: branch_backward if path[i] else shortcut_backward

# %%
exercises.check("routed_gradient", routed_gradient)

# %% [markdown]
# `paths.routed_backward(model, dy, main)` does the same on a real net, with `main` the indices
# of the blocks whose branch the path takes. `paths.sum_over_paths` runs one forward pass, the
# full backward, and the backward along each of the `2^n` paths (the layers keep their caches
# for it: `nn.module.retain_caches()`), then compares. On a ResNet-14 (6 blocks, 64 paths; two of
# the blocks change shape with a zero-padding shortcut), in float64, in training mode:

# %%
tiny = experiments.build_model("resnet14", width=0.25, seed=0, dtype="float64")
x_tiny = rng.standard_normal((4, 3, 16, 16))
dy_tiny = rng.standard_normal((4, tiny.num_classes))
tiny.train()
identity = paths.sum_over_paths(tiny, x_tiny, dy_tiny)
shortcuts = [type(b.downsample).__name__ if b.downsample is not None else "identity"
             for _, b in residual_blocks(tiny)]
print(f"{len(shortcuts)} blocks; their shortcuts: {', '.join(shortcuts)}")
print(f"{identity['paths']} paths: max |full backward - sum of the routed gradients| = "
      f"{identity['max_abs_error']:.1e} (largest entry of the full gradient: "
      f"{np.abs(identity['full']).max():.2e})")
one = np.abs(identity["full"] - identity["path_sum"]).max() / np.abs(identity["full"]).max()
print(f"relative to the largest entry: {one:.1e}, float64 rounding")

# %% [markdown]
# The sum of the 64 routed gradients is the full gradient, to rounding. So "a residual net is a
# collection of paths" is, for the backward pass at a given input, an identity, not a metaphor.
#
# ## 3. Which paths carry the gradient?
#
# Veit et al. (§4.2, Fig. 6) trained a ResNet-110 on CIFAR-10, sampled paths of each length,
# routed a backward pass through each, and measured the gradient reaching the input. One path's
# gradient shrinks with its length (each branch it passes through scales it down, each shortcut
# passes it on); multiplied by the number of paths of that length it gives the gradient all
# paths of that length carry. We do the same on a residual ResNet-20 (9 blocks: 512 paths),
# trained briefly on the synthetic set, and train its plain twin (one path) for section 4.
#
# `paths.paths_study` trains both nets with the same initial weights and batches (cosine
# schedule), then measures: for the residual net, `gradient_by_path_length` on a batch of test
# images (the cross-entropy gradient, training-mode batch norm as in a training step; for each
# length `k`, up to `SAMPLES` random paths, or all of them where there are fewer) before and
# after training; for both nets, `delete_blocks` and `reorder_blocks` (section 4).

# %%
study = paths.paths_study(P_MODEL, steps=P_STEPS, batch_size=P_BATCH, width=P_WIDTH,
                          n_train=N_TRAIN, n_test=N_TEST, samples=SAMPLES, draws=DRAWS,
                          max_swaps=MAX_SWAPS, images=IMAGES, seed=0)
residual_run, plain_run = study["runs"]
for run in study["runs"]:
    errors = run["training"]["train_error"][-50:]
    print(f"{run['label']:18s}: test accuracy {run['deletion']['baseline_accuracy']:.1%}, training "
          f"error {np.mean(errors):.1%} (last {len(errors)} steps), {run['training']['seconds']:.0f} s")

# %%
def length_summary(g, label):
    """One line: the gradient per branch, the lengths that carry 90%, the weighted mean length."""
    n = g["blocks"]
    k = np.array([row["length"] for row in g["lengths"]])
    magnitude = np.array([row["mean"] for row in g["lengths"]])
    share = np.array([row["share"] for row in g["lengths"]])
    factor = np.exp(np.polyfit(k, np.log(magnitude), 1)[0])  # log-linear fit over all lengths
    e = paths.effective_lengths(g, 0.9)
    binomial = np.array(paths.path_length_distribution(n)["probability"])
    print(f"{label}: one path's gradient x{factor:.2f} per branch (fit over k = 0..{n}); lengths "
          f"{e['shortest']}..{e['longest']} carry {e['share']:.0%} of the total and are "
          f"{e['path_fraction']:.1%} of the paths; lengths <= {n // 3}: {share[: n // 3 + 1].sum():.0%} "
          f"of the gradient, {binomial[: n // 3 + 1].sum():.1%} of the paths; gradient-weighted mean "
          f"length {e['mean_length']:.1f} (mean path length {n / 2})")


n = residual_run["gradients"]["trained"]["blocks"]
print(f"{n} blocks, {2 ** n} paths; gradient measure: {residual_run['gradients']['trained']['metric']}")
print(f"{'length':>6s} {'paths':>6s} {'sampled':>8s} {'one path, trained':>18s} {'[min, max]':>20s}"
      f" {'at init':>9s} {'share, trained':>15s} {'at init':>8s}")
trained, initial = (residual_run["gradients"][w]["lengths"] for w in ("trained", "initial"))
for row, row0 in zip(trained, initial):
    print(f"{row['length']:6d} {row['paths']:6d} {len(row['magnitudes']):8d} {row['mean']:18.3g} "
          f"[{row['min']:8.3g}, {row['max']:8.3g}] {row0['mean']:9.3g} {row['share']:15.1%} "
          f"{row0['share']:8.1%}")
for when in ("initial", "trained"):
    length_summary(residual_run["gradients"][when], f"{P_MODEL} {when}")

# %%
plot.paths_figure(study)

# %% [markdown]
# The top panels are the argument in pictures: (a) the binomial, (b) one path's gradient against
# its length (log axis; the band spans the smallest to the largest sampled path of each length),
# (c) the two multiplied, the share of the total carried by each length, and (d) that share
# accumulated, against the share of paths (dotted).
#
# In this 9-block net one path's gradient does **not** shrink with its length. The log-linear fit
# gives a factor 1.11 per branch at initialisation and 1.13 after training: panel (b) rises. So
# the share per length, (c), is the binomial again: lengths 3 to 7 carry 91% of the total and are
# 89.1% of the paths, paths of length at most 3 carry 20% of the gradient and are 25.4% of the
# paths, and the gradient-weighted mean length is 4.7 against a mean path length of 4.5, before
# and after training alike. Nothing here says that the short paths carry the gradient.
#
# ### A deeper net
#
# The same measurement on a residual ResNet-56 (27 blocks, 134 million paths), at initialisation
# and after `DEEP_STEPS` steps of training on the same data (only the residual net: its plain twin
# would not train in this budget, notebook 06). Fewer paths per length (`DEEP_SAMPLES`) and images
# (`DEEP_IMAGES`), to fit the budget.

# %%
splits = experiments.load_splits(n_train=N_TRAIN, n_test=N_TEST, seed=0)
transform = builders.eval_transform(splits.mean, splits.std)
x_g, y_g = paths.gradient_batch(splits.test, transform, DEEP_IMAGES, np.float32)
deep = experiments.build_model(DEEP_MODEL, width=P_WIDTH, num_classes=splits.train.num_classes, seed=0)
deep_grads = {"initial": paths.gradient_by_path_length(deep, x_g, y_g, samples=DEEP_SAMPLES)}
curves = experiments.train_steps(deep, splits, steps=DEEP_STEPS, batch_size=P_BATCH,
                                 schedule="cosine", seed=0)
deep_grads["trained"] = paths.gradient_by_path_length(deep, x_g, y_g, samples=DEEP_SAMPLES)
print(f"residual {DEEP_MODEL}: {DEEP_STEPS} steps, test accuracy {1 - curves['eval'][-1]['test_error']:.1%}, "
      f"{curves['seconds']:.0f} s of training; {DEEP_SAMPLES} sampled paths per length (all where "
      f"there are fewer), {DEEP_IMAGES} test images")
n_deep = deep_grads["trained"]["blocks"]
binomial = paths.path_length_distribution(n_deep)["probability"]
print(f"{'length':>6s} {'paths':>10s} {'one path: init':>15s} {'trained':>9s} {'share: init':>12s} "
      f"{'trained':>8s} {'of paths':>9s}")
for row0, row, b in zip(deep_grads["initial"]["lengths"], deep_grads["trained"]["lengths"], binomial):
    print(f"{row['length']:6d} {row['paths']:10d} {row0['mean']:15.3g} {row['mean']:9.3g} "
          f"{row0['share']:12.1%} {row['share']:8.1%} {b:9.1%}")
for when in ("initial", "trained"):
    length_summary(deep_grads[when], f"{DEEP_MODEL} {when}")

# %%
fig, (ax_mag, ax_share) = new_figure(11, 4.2, ncols=2)
k_deep = np.arange(n_deep + 1)
for when, style in (("initial", "--"), ("trained", "-")):
    rows = deep_grads[when]["lengths"]
    ax_mag.semilogy(k_deep, [r["mean"] for r in rows], style, marker="o", ms=3, color="C0",
                    label=f"{when} (mean of the sampled paths)")
    ax_mag.fill_between(k_deep, [r["min"] for r in rows], [r["max"] for r in rows], color="C0",
                        alpha=0.12 if when == "trained" else 0.06)
    ax_share.plot(k_deep, [r["share"] for r in rows], style, marker="o", ms=3, color="C0",
                  label=f"share of the gradient, {when}")
ax_share.plot(k_deep, binomial, ":", color="grey", label=f"share of the paths, C({n_deep}, k) / 2^{n_deep}")
ax_mag.set(xlabel="path length k", ylabel="mean over images of |dL/dx| (log)",
           title=f"residual {DEEP_MODEL}: gradient through one path (band: min to max)")
ax_share.set(xlabel="path length k", ylabel="share",
             title="gradient carried by all paths of length k, C(n, k) x magnitude")
for ax in (ax_mag, ax_share):
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
fig

# %% [markdown]
# At 27 blocks the picture is Veit et al.'s. Already at initialisation one path's gradient falls
# by a factor 0.70 per branch (fit over all lengths), and the lengths that carry 92% of the total,
# 7 to 15, sit below the middle; the gradient-weighted mean length is 11.4 against 13.5. After 200
# steps of training (63.5% test accuracy) the fall is steeper, 0.45 per branch: paths of length 5
# to 12 carry 91% of the gradient while being 35.0% of the paths, paths of length at most 9 carry
# 58% of it while being 6.1% of the paths, and the weighted mean length drops to 8.9. The band in
# the left panel (the smallest to the largest of the 12 sampled paths of each length) is narrow
# next to the fall from length 0 to 27, more than nine orders of magnitude after training.
#
# Why does a branch shrink the gradient in the 27-block net and not in the 9-block one? We did
# not measure it. One candidate: along a stage the shortcut sums ever more branch outputs, so the
# input each branch normalises grows, and batch norm's backward divides by its standard deviation
# (exercise 2). Each of these measurements is one net, one training seed and one batch of images.
#
# Two cautions. The "total" is Veit et al.'s weighting, `C(n, k)` times the mean magnitude of one
# path: it treats the gradients of different paths as if their sizes added, while they are vectors
# that partly cancel. And these are nets of 9 and 27 blocks trained for a few hundred steps, not
# their 54-block ResNet-110.
#
# ## 4. Deleting and swapping blocks
#
# If a residual net is an ensemble of paths, deleting a block removes the paths through its branch
# (half of them) and keeps the other half intact: accuracy should fall smoothly with the number
# of deleted blocks. A plain net is one path, and deleting any of its blocks breaks it. Veit et al.
# (Fig. 5a) deleted k random blocks of a ResNet-110 and saw the error grow smoothly with k; they
# also swapped blocks (Fig. 5b) and saw the same smooth degradation. `delete_blocks` replaces `k`
# random blocks by their shortcut (as notebook 06 did for one), `DRAWS` random sets for each `k`;
# `reorder_blocks` swaps random pairs of blocks that keep their shape and sit in the same stage.

# %%
print(f"test accuracy, mean over {DRAWS} random sets of deleted blocks (std, [min, max]); chance "
      f"{residual_run['chance']:.0%}")
print(f"{'k deleted':>9s}" + "".join(f"{run['label']:>34s}" for run in study["runs"]))
for rows in zip(*(run["deletion"]["rows"] for run in study["runs"])):
    print(f"{rows[0]['deleted']:9d}" + "".join(
        f"{r['mean']:>10.1%} ± {r['std']:5.1%} [{r['min']:5.1%}, {r['max']:5.1%}]" for r in rows))
chance = residual_run["chance"]
for run in study["runs"]:
    rows = run["deletion"]["rows"]
    if rows[0]["mean"] <= chance:  # (fast mode: an untrained net)
        print(f"{run['label']:18s} is not above chance intact")
        continue
    above = [(row["mean"] - chance) / (rows[0]["mean"] - chance) for row in rows[1:4]]
    print(f"{run['label']:18s} keeps " + ", ".join(f"{v:.0%}" for v in above)
          + f" of its accuracy above chance with {', '.join(str(k) for k in range(1, len(above) + 1))}"
          " blocks deleted (mean over the sets)")

# %%
print(f"test accuracy after s random swaps of same-shape blocks in one stage (mean, [min, max]; "
      f"{len(residual_run['reordering']['pairs'])} swappable pairs)")
print(f"{'swaps':>5s} {'Kendall tau':>12s}" + "".join(f"{run['label']:>28s}" for run in study["runs"]))
for rows in zip(*(run["reordering"]["rows"] for run in study["runs"])):
    tau = np.mean(rows[0]["kendall_tau"])
    print(f"{rows[0]['swaps']:5d} {tau:12.2f}" + "".join(
        f"{r['mean']:>12.1%} [{r['min']:5.1%}, {r['max']:5.1%}]" for r in rows))

# %% [markdown]
# The two twins start from the same accuracy (96.0% residual, 96.4% plain). Deleting one random
# block leaves the residual net 42.9% ± 13.9% (29.3% to 63.5% over the 6 draws) and the plain net
# 12.6% ± 4.8%, close to chance: of its accuracy above chance the residual net keeps 38% with one
# block deleted and 26% with two, the plain net 3% and 1%. With three or more blocks deleted both
# are at chance. Swapping tells the same story: after one swap (Kendall tau 0.92) the residual
# net has 48.7% on average, the plain net 11.0%; after four swaps the residual net still has
# 21.4%. So the residual net degrades gradually where the plain net collapses at once, the
# contrast Veit et al. describe; but it degrades much faster than their ResNet-110, whose error
# grew smoothly over many deleted blocks (their Fig. 5a). With 9 blocks each one does a larger
# share of the work (notebook 06 found the same for single deletions). One training seed: the
# spreads above are over which blocks are deleted or swapped, not over trainings.
#
# ## 5. Shattered gradients
#
# Balduzzi et al. asked a different question: not how large the gradient is, but whether it is
# *informative*. Take a line of inputs `x(t) = x0 + t·v`, `t ∈ [−1, 1]`, and the gradient of a
# fixed output `f = u · logits` with respect to the input at each point, `g(t) = df/dx`. Its
# component along the line, `s(t) = g(t) · v/|v|`, is the derivative of `f` along the line. If
# `s` is smooth, the gradient at one input says something about the gradient at nearby inputs,
# and a step in its direction does what it promises; if `s` is white noise, it does not. They
# found the gradients of deep plain nets **shattered** into white noise, and those of residual
# nets correlated ("brown noise", like a random walk), at initialisation.
#
# The measure is the autocorrelation of the curve at lag `k` (in line points), `r(k)`: near 0 at
# every `k ≥ 1` for white noise, decaying slowly for a random walk. **Your turn**: write it.

# %%
# exercise: autocorrelation
def autocorrelation(s):
    raise NotImplementedError  # r(k) = sum_{t<P-k} (s_t - m)(s_{t+k} - m) / sum_t (s_t - m)^2

# %%
exercises.check("autocorrelation", autocorrelation)

# %% [markdown]
# The two reference curves, 256 points each (library's `shattered.autocorrelation`):

# %%
white = rng.standard_normal(256)
brown = np.cumsum(rng.standard_normal(256))
for name, curve in [("white noise", white), ("random walk (brown noise)", brown)]:
    r = shattered.autocorrelation(curve)
    print(f"{name:26s}: r(1) = {r[1]:6.3f}, r(5) = {r[5]:6.3f}, first k with r(k) < 0.5: "
          f"{shattered.half_lag(r)}")

# %% [markdown]
# `shattered.shattered_study` builds, for each depth, the plain and the residual CIFAR ResNet with
# batch norm (the same initial weights), sets batch norm's running statistics from a separate batch
# of random images and runs it in evaluation mode (so each point's gradient is its own, not mixed
# with the other points' through the batch statistics), and computes `s(t)` along one line of
# `SH_POINTS` random 3×16×16 images at initialisation. Besides `r(k)` it reports `c(k)`, the mean
# cosine between the full gradient vectors `g(t)` and `g(t + k)`. The seed draws the weights, the
# line and `u`; we run three.

# %%
studies = {seed: shattered.shattered_study(SH_DEPTHS, batch_norm=(True,), width=SH_WIDTH,
                                           points=SH_POINTS, seed=seed) for seed in SH_SEEDS}
print(f"seed {SH_SEEDS[0]} (width {SH_WIDTH}, {SH_POINTS} points):")
print(shattered.format_shattered_table(studies[SH_SEEDS[0]]["table"]))

# %%
plot.shattered_figure(studies[SH_SEEDS[0]])

# %% [markdown]
# How much of that is the seed? The same table's r(1) and c(1) for every seed, and their mean and
# spread:

# %%
def by_net(study):
    return {(row["depth"], row["residual"]): row for row in study["table"]}


rows = {seed: by_net(study) for seed, study in studies.items()}
keys = list(rows[SH_SEEDS[0]])
print(f"{'':14s}" + "".join(f"{'r(1) seed ' + str(s):>12s}" for s in SH_SEEDS)
      + f"{'mean ± std':>16s}{'c(1) mean ± std':>20s}")
summary = {}
for depth, residual in keys:
    r1 = np.array([rows[s][depth, residual]["acf_lag1"] for s in SH_SEEDS])
    c1 = np.array([rows[s][depth, residual]["cosine_lag1"] for s in SH_SEEDS])
    summary[depth, residual] = r1
    name = f"{'residual' if residual else 'plain'}-{depth}"
    print(f"{name:14s}" + "".join(f"{v:12.3f}" for v in r1)
          + f"{r1.mean():9.3f} ± {r1.std(ddof=1):.3f}{c1.mean():13.3f} ± {c1.std(ddof=1):.3f}")
for depth in SH_DEPTHS:
    gap = summary[depth, True] - summary[depth, False]
    print(f"depth {depth:3d}: residual r(1) minus plain r(1), per seed: "
          + ", ".join(f"{g:+.3f}" for g in gap) + f"; smallest gap {gap.min():+.3f}")

# %% [markdown]
# The reference curves first: white noise has r(1) = −0.06, the random walk 0.96. At depth 8 the
# plain and the residual net are alike (r(1) 0.959 ± 0.028 and 0.975 ± 0.013, mean ± std over the
# three seeds; the gap changes sign between seeds). From depth 20 on the plain net decorrelates
# faster: r(1) 0.571 ± 0.030 against 0.901 ± 0.032. At depths 56 and 110 the plain nets' curves
# are white noise: r(1) −0.060 ± 0.048 and −0.046 ± 0.042, and the mean cosine of neighbouring
# full gradients c(1) is 0.011 and 0.003, so the gradients of two inputs 1/255 of the line apart
# are orthogonal. The residual twins keep r(1) 0.792 ± 0.052 and 0.644 ± 0.043 (c(1) 0.888 and
# 0.799). The gap is large in every seed: at least 0.742 at depth 56 and 0.642 at 110. The seeds
# move r(1) by a few hundredths; at depths 56 and 110 the plain/residual difference is more than
# ten times that.
#
# The residual nets decorrelate too as they get deeper (r(1) 0.975, 0.901, 0.792, 0.644 from
# depth 8 to 110), only slowly. Balduzzi et al. derive the rates, the correlation falling
# exponentially with depth in plain nets and sublinearly in residual nets with batch norm; four
# depths are too few to tell rates apart, and we do not try. All of this is at initialisation.
#
# ## 6. An open thread: pre-activation blocks
#
# When the shattered-gradient experiment was added to the library, one seed showed pre-activation
# residual nets (He et al. 2016b: BN and ReLU before each convolution, nothing after the `+`;
# notebook 08) with a *lower* r(1) than the original residual nets at depth 56 with batch norm.
# Three seeds:

# %%
PRE_DEPTH = SH_DEPTHS[-2] if len(SH_DEPTHS) > 2 else SH_DEPTHS[-1]
pre = {}
for seed in SH_SEEDS:
    for family in ("resnet", "preact_resnet"):
        result = shattered.shattered_gradients(f"{family}{PRE_DEPTH}", residual=True, width=SH_WIDTH,
                                               points=SH_POINTS, seed=seed)
        pre.setdefault(family, []).append((result["acf_lag1"], result["cosine_lag1"]))
for family, values in pre.items():
    r1, c1 = np.array(values).T
    print(f"residual {family + str(PRE_DEPTH):20s} r(1) per seed " + ", ".join(f"{v:.3f}" for v in r1)
          + f"; mean {r1.mean():.3f} ± {r1.std(ddof=1):.3f}; c(1) mean {c1.mean():.3f}")
print(f"total time of this notebook: {time.perf_counter() - START:.0f} s")

# %% [markdown]
# It holds over the three seeds: the pre-activation ResNet-56 has r(1) 0.507 ± 0.037 against
# 0.792 ± 0.052 for the original, lower in every seed (c(1) 0.747 against 0.888). Its gradients
# are still far from the plain net's white noise, but they shatter more than the original
# block's. Why, this notebook does not say (exercise 6).
#
# ## What the two pictures say, and what they do not
#
# - The path expansion of the backward pass is exact (section 2, to float64 rounding). Which paths
#   matter is an empirical question, and the answer depends on the net: in our 27-block ResNet-56
#   the shorter paths carry most of the gradient, more so after training, as Veit et al. found in
#   ResNet-110; in our 9-block ResNet-20 one path's gradient does not shrink with length, and the
#   gradient is spread over the lengths like the paths themselves.
# - Deleting or swapping blocks hurts a trained residual net gradually and its plain twin at once,
#   but our small residual net is far less robust than the ResNet-110 of the paper.
# - At initialisation with batch norm, the input gradients of deep plain nets are white noise along
#   a line of inputs, those of residual nets are not, in every seed. Balduzzi et al. argue that a
#   gradient which is noise at the scale of a step cannot guide the step, and that this, more than
#   its size, is why deep plain nets train badly (notebook 06 saw a plain 56 not train, and
#   notebook 04 saw its gradients *explode*, not vanish). This notebook measures the shattering;
#   it does not show that the shattering is what stops the training.
#
# ## Exercises
#
# Checked: `path_length_counts` (section 1, compared with the library for 1 to 54 blocks),
# `routed_gradient` (section 2, on small dense residual nets with known branch and shortcut
# backwards, including a change of width) and `autocorrelation` (section 5, on white noise, a
# random walk, a curve on an offset and short curves). The rest are open questions; the
# notebook's cells are the tools.
#
# 1. Run `shattered.shattered_study` without batch norm (`batch_norm=(False,)`). Do plain nets
#    still shatter at depth 56, and how fast does r(k) fall?
# 2. Measure the gradient by path length at initialisation for ResNet-20, 32, 44 and 56
#    (`paths.gradient_by_path_length` on `experiments.build_model(name)`, no training). From which
#    depth does one path's gradient shrink with its length? Record the standard deviation of each
#    block's input (a forward hook is a few lines: wrap `block.forward`) and compare it with the
#    factor per branch.
# 3. Balduzzi et al. propose the "looks linear" initialisation to keep plain nets from
#    shattering. Read their §5 and say which measurement of this notebook would test it.
# 4. Delete k blocks chosen from one stage only, then spread over the three stages. Does it
#    matter where the deleted blocks are?
# 5. Train the residual ResNet-56 for more steps and measure the gradient by path length again.
#    Does the weighted mean length keep falling?
# 6. The pre-activation thread of section 6: is it the last BN-ReLU before the pooling, the
#    missing ReLU after each `+`, or the stream's growing scale? Build variants with
#    `shattered.shattered_gradients(...)` on your own models and measure r(1) over seeds.

# Source of notebooks/06_degradation_and_lesion.ipynb (build and run: python notebooks/run_notebooks.py).

# %% [markdown]
# # 06 · Degradation and lesion
#
# **What you will learn**
#
# - **degradation** (He et al. 2015, Fig. 6): with batch norm, a deeper *plain* network reaches a
#   *higher training error* than a shallower one in the same budget, although its gradients do not
#   vanish (notebook 04). Its residual twin, with the same layers and the same initial weights,
#   does not degrade;
# - why a residual net has it easier: a residual block is the identity as soon as its branch
#   outputs 0, a plain block has to learn the identity;
# - **lesion** (Veit et al. 2016): deleting one block of a trained network at test time. The
#   residual net still has a path around the hole; the plain net does not.
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
    L_MODEL, L_WIDTH, L_STEPS, L_BATCH = "resnet8", 0.25, 10, 32
else:
    DEPTHS, D_WIDTH, D_STEPS, D_BATCH, N_TRAIN, N_TEST = (20, 56), 0.25, 400, 64, 10000, 1000
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
for run in result["runs"]:
    train_error, test_error = final_errors(run, window=min(50, D_STEPS))
    print(f"{run['label']:12s} ({run['parameters']:,} parameters): training error {train_error:6.1%} "
          f"(last 50 steps), test error {test_error:6.1%}, {run['seconds']:.0f} s")

# %%
plot.degradation_figure(result)

# %% [markdown]
# In the full run the 20-layer plain net learns the task in this budget (training error below
# 10% at the end); the 56-layer plain net barely moves: its training error is still near 80%
# after 400 steps. That is degradation. It is not overfitting (the *training* error is the high
# one), and it is not vanishing gradients: notebook 04 measured this plain net's gradients at
# initialisation as large, growing towards the input. The 56-layer residual net, with the same
# layers and the same initial weights, trains: a little behind the 20-layer one on the training
# batches, and ending with no worse a test error. (The test error of the residual nets jumps from
# one evaluation to the next: with a constant learning rate of 0.1 the batch-norm statistics
# and the weights are still moving fast. He et al. trained for 64 000 steps with a decaying
# learning rate, where the deeper residual nets reach the lower training error; this is a short
# glimpse, at a quarter of the width.)
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

# %% [markdown]
# In the full run both nets are accurate intact (above 90%). Deleting almost any single block
# sends the plain net to near chance (10%): with no other path, every block is essential. The
# residual net loses little from some deletions (here the last block, and the second block of
# the first stage) and much from others; deleting the first block of the last stage, which
# changes shape, sends it to chance as well.
# Veit et al. saw small losses for almost every block of a 110-layer ResNet, whose 54 blocks each
# do a small share of the work; these nets have 9 blocks, so each does more. What holds at both
# sizes: the residual net keeps working without some of its blocks, the plain net without almost
# none.
#
# ## Exercises
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

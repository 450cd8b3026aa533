# Source of notebooks/07_features_and_transfer.ipynb (build and run: python notebooks/run_notebooks.py).

# %% [markdown]
# # 07 · Features and transfer
#
# **What you will learn**
#
# - what a trained ResNet-18 turns an image into: the 512-d embedding before the head, `model.features(x)`;
# - nearest neighbours in that space (cosine similarity), also for classes the network never saw;
# - a 2-D picture of the embeddings with PCA, computed by SVD in numpy, with and without
#   L2-normalising the embeddings first;
# - transfer: a **new head** on the frozen backbone learns new classes well above chance, and far
#   above the same head on raw pixels or on a random backbone; with only a few labelled images
#   per class, *which* images are labelled moves the result a lot, so we average over draws.
#
# The setup: the synthetic set's first five classes (stripes, checkerboard, dots: *textures*) train
# the backbone; the other five (ring, disc, plus, frame, triangle: *shapes*) are the new task.
# Read beside it: `nnscratch/models/classifier.py` (`features`, `replace_head`, `freeze_backbone`),
# `nnscratch/training/evaluation.py` (`extract_features`).

# %%
import os
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm, without ipywidgets
from nnscratch import data, exercises, models, nn, optim
from nnscratch.plot.figure import new_figure
from nnscratch.training import builders, evaluate, extract_features

%matplotlib inline

FAST = os.environ.get("NNSCRATCH_FAST") == "1"  # CI sets this: smaller sizes, same steps
if FAST:
    WIDTH, N_TRAIN, N_TEST, EPOCHS, SHOTS, DRAWS = 0.25, 400, 200, 1, (5, 20), 3
else:
    WIDTH, N_TRAIN, N_TEST, EPOCHS, SHOTS, DRAWS = 1.0, 6000, 1000, 5, (1, 2, 5, 10, 20, 50, 100), 10
rng = np.random.default_rng(0)
print("fast mode" if FAST else "full mode", dict(width=WIDTH, n_train=N_TRAIN, epochs=EPOCHS))

# %% [markdown]
# ## 1. A backbone trained on the texture classes
#
# ResNet-18 (ImageNet stem, full width in full mode) trained on classes 0–4 only; classes 5–9 are
# kept apart for the transfer task. Labels are renumbered 0–4 in each part. The training loop is
# the trainer's, written out: augmented batches, forward, loss, backward, step (Adam, as in 05).

# %%
train_all, test_all = data.synthetic(n_train=N_TRAIN, n_test=N_TEST, seed=0)


def keep_classes(ds, keep):
    """The images of classes ``keep``, relabelled 0 .. len(keep) - 1."""
    index = np.flatnonzero(np.isin(ds.labels, keep))
    relabel = np.searchsorted(keep, ds.labels[index])
    return data.ArrayDataset(ds.images[index], relabel, [ds.classes[k] for k in keep])


OLD, NEW = np.arange(0, 5), np.arange(5, 10)
old_train, old_test = keep_classes(train_all, OLD), keep_classes(test_all, OLD)
new_train, new_test = keep_classes(train_all, NEW), keep_classes(test_all, NEW)
print("old classes:", old_train.classes, len(old_train), "train /", len(old_test), "test")
print("new classes:", new_train.classes, len(new_train), "train /", len(new_test), "test")

mean, std = data.channel_stats(old_train.images)
transform = builders.eval_transform(mean, std)
loader = data.BatchLoader(old_train, 64, shuffle=True, seed=0, drop_last=True, prefetch=True,
                          transform=data.Pipeline.from_options(mean, std, crop=4, flip=True))
model = models.resnet18(num_classes=5, stem="imagenet", width=WIDTH, seed=0)
optimizer = optim.Adam(model.parameters(), lr=1e-3)
criterion = nn.CrossEntropyLoss()
start = time.perf_counter()
for epoch in range(EPOCHS):
    for x, y in loader:
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        model.backward(criterion.backward())
        optimizer.step()
    print(f"epoch {epoch + 1}: last batch loss {loss:.3f}")
print(f"{EPOCHS} epochs in {time.perf_counter() - start:.0f} s; test accuracy on the old classes: "
      f"{evaluate(model, old_test, transform).accuracy:.1%}")

# %% [markdown]
# ## 2. Embeddings
#
# `features(x)` runs the backbone up to the global average pool: one vector per image, 512
# numbers at full width, which the head `fc` maps to logits. `extract_features` does it in eval
# mode over a whole dataset.

# %%
emb_old = extract_features(model, old_test, transform)
emb_new = extract_features(model, new_test, transform)
print("embeddings:", emb_old.shape, emb_old.dtype, f"(fc.in_features = {model.fc.in_features})")
print(f"non-negative (they average ReLU outputs): min {emb_old.min():.3f}; "
      f"share of exact zeros {np.mean(emb_old == 0):.0%}")

# %% [markdown]
# ## 3. Nearest neighbours
#
# Cosine similarity, `cos(a, b) = a·b / (|a| |b|)`, for every pair of test images. A good embedding
# puts images of one class next to each other: how often is an image's nearest neighbour (itself
# excluded) of its own class? We ask this for the old classes and for the **new** ones, which the
# backbone never trained on.

# %%
def nearest(emb, k):
    unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    sim = unit @ unit.T  # (N, N) cosine similarities
    np.fill_diagonal(sim, -np.inf)  # not itself
    return np.argsort(-sim, axis=1)[:, :k]  # (N, k), most similar first


for name, emb, ds in [("old classes", emb_old, old_test), ("new classes", emb_new, new_test)]:
    nn_labels = ds.labels[nearest(emb, 1)[:, 0]]
    print(f"{name}: nearest neighbour has the same class for {np.mean(nn_labels == ds.labels):.1%} "
          f"of the test images (chance: 20%)")

# %% [markdown]
# Four images of the new classes (left column) and their five nearest neighbours:

# %%
neighbours = nearest(emb_new, 5)
queries = [int(np.flatnonzero(new_test.labels == k)[0]) for k in (0, 1, 3, 4)]
fig, axs = new_figure(8, 6.6, nrows=4, ncols=6)
for row, q in enumerate(queries):
    for col, i in enumerate([q, *neighbours[q]]):
        ax = axs[row, col]
        ax.imshow(new_test.images[i].transpose(1, 2, 0))
        ax.set_title(("query: " if col == 0 else "") + new_test.classes[new_test.labels[i]], fontsize=7)
        ax.axis("off")
fig

# %% [markdown]
# The neighbours often share the query's *colours* (background and shape) more visibly than its
# shape. A backbone trained to tell textures apart never needed to ignore colour, and nothing
# told it that shape is what matters now. How much colour does the embedding carry? Compare the
# mean RGB colour of each image with that of its nearest neighbour, and with that of a random
# image; and ask how often the nearest neighbour by mean colour alone (3 numbers per image) has
# the same class:

# %%
colour = new_test.images.reshape(len(new_test), 3, -1).mean(axis=2).astype(np.float64)  # (N, 3)
d_neighbour = np.linalg.norm(colour - colour[nearest(emb_new, 1)[:, 0]], axis=1)
d_random = np.linalg.norm(colour - colour[np.random.default_rng(0).permutation(len(colour))], axis=1)
print(f"distance in mean colour (0-255 scale) to the embedding's nearest neighbour: median "
      f"{np.median(d_neighbour):.1f}; to a random image: median {np.median(d_random):.1f}")
by_colour = np.sum((colour[:, None] - colour[None]) ** 2, axis=2)
np.fill_diagonal(by_colour, np.inf)
print(f"nearest neighbour by mean colour alone has the same class for "
      f"{np.mean(new_test.labels[by_colour.argmin(axis=1)] == new_test.labels):.1%} (chance: 20%)")

# %% [markdown]
# The embedding's nearest neighbour is much closer in mean colour than a random image is (the
# two medians above), while mean colour alone predicts the class no better than chance (the
# last line). So the embedding carries colour, which says nothing about these classes, along
# with shape: plausibly part of why the new classes' neighbours agree so much less often than
# the old classes' (the two rates of the previous section).
#
# ## 4. A 2-D picture: PCA by SVD
#
# Centre the embeddings, `Xc = X − mean`, and take the SVD `Xc = U S Vᵀ`. The rows of `Vᵀ` are the
# principal directions; projecting onto the first two, `Xc @ V[:, :2]`, keeps the most variance any
# 2-D linear view can. The same directions are the top eigenvectors of the covariance
# `Xcᵀ Xc / (N − 1)`, with eigenvalues `S² / (N − 1)`.
#
# **Your turn.** Write `pca_2d(emb) -> proj`, the (N, 2) projection of the centred embeddings onto
# the first two principal directions, from the SVD (four lines). A direction's sign is arbitrary,
# so the check compares each column up to sign; it recognises a forgotten centring, columns of
# `Vᵀ` taken for its rows, and `U` without `S`.

# %%
# exercise: pca_2d
def pca_2d(emb):
    raise NotImplementedError  # centre; U, S, Vt = np.linalg.svd(..., full_matrices=False); project

# %%
exercises.check("pca_2d", pca_2d)

# %% [markdown]
# The lesson goes on with the other route to the same directions, the top eigenvectors of the
# covariance (`eigh` sorts its eigenvalues in ascending order); the variances along the first
# two directions from it and from the singular values agree:

# %%
def pca_2d_eigh(emb):
    """(N, 2) projection, the variances along all directions (decreasing), the centred rows."""
    centred = emb.astype(np.float64) - emb.mean(axis=0)
    variances, vectors = np.linalg.eigh(centred.T @ centred / (len(centred) - 1))
    return centred @ vectors[:, ::-1][:, :2], variances[::-1], centred


proj_old, variances_old, centred_old = pca_2d_eigh(emb_old)
S_old = np.linalg.svd(centred_old, compute_uv=False)
print("variance along the first two directions, SVD:  ", (S_old[:2] ** 2 / (len(centred_old) - 1)).round(4))
print("                                   eigh:       ", variances_old[:2].round(4))
print(f"share of the variance in 2-D: {np.sum(S_old[:2] ** 2) / np.sum(S_old ** 2):.0%}")

# %%
proj_new, _, _ = pca_2d_eigh(emb_new)
fig, axs = new_figure(11, 4.6, ncols=2)
for ax, proj, ds, title in [(axs[0], proj_old, old_test, "old classes (trained on)"),
                            (axs[1], proj_new, new_test, "new classes (never seen)")]:
    for k, name in enumerate(ds.classes):
        pts = proj[ds.labels == k]
        ax.scatter(pts[:, 0], pts[:, 1], s=6, alpha=0.6, color=f"C{k}", label=name)
    ax.set(title=f"embeddings of the {title}, PCA", xlabel="PC 1", ylabel="PC 2")
    ax.legend(fontsize=8, markerscale=2)
    ax.grid(alpha=0.3)
fig

# %% [markdown]
# The old-class picture is crammed: a few stripe images with long embeddings lie far out along
# PC 1 and PC 2 (the lengths printed below have a long tail), PCA spends its two directions on
# them, and the other classes share a corner. The new classes spread out more, but overlap (only the frames
# stand apart). One common remedy is to divide each embedding by its length (L2-normalise) before
# the PCA, so that no image weighs more for being large; it is also what the cosine similarity
# above does. Does it help the picture? We measure how well the classes separate *in the 2-D
# picture* (how often a point's nearest point in 2-D has its class) with and without it:

# %%
def l2_normalise(emb):
    return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)


def neighbour_agreement_2d(proj, labels):
    dist = np.sum((proj[:, None] - proj[None]) ** 2, axis=2)
    np.fill_diagonal(dist, np.inf)
    return np.mean(labels[dist.argmin(axis=1)] == labels)


norms = np.linalg.norm(emb_old, axis=1)
print(f"embedding lengths, old classes: median {np.median(norms):.1f}, 99th percentile "
      f"{np.percentile(norms, 99):.1f}, max {norms.max():.1f}")
projections = {}
for name, emb, ds in [("old classes", emb_old, old_test), ("new classes", emb_new, new_test)]:
    for kind, e in [("raw", emb), ("L2-normalised", l2_normalise(emb))]:
        proj, variances, _ = pca_2d_eigh(e)
        projections[name, kind] = proj
        print(f"{name} {kind:14s}: variance in 2-D {np.sum(variances[:2]) / np.sum(variances):4.0%}, "
              f"nearest point in the 2-D picture has the same class for "
              f"{neighbour_agreement_2d(proj, ds.labels):.1%}")

fig, axs = new_figure(11, 4.6, ncols=2)
for ax, (name, ds) in zip(axs, [("old classes", old_test), ("new classes", new_test)], strict=True):
    proj = projections[name, "L2-normalised"]
    for k, cls in enumerate(ds.classes):
        pts = proj[ds.labels == k]
        ax.scatter(pts[:, 0], pts[:, 1], s=6, alpha=0.6, color=f"C{k}", label=cls)
    ax.set(title=f"L2-normalised embeddings of the {name}, PCA", xlabel="PC 1", ylabel="PC 2")
    ax.legend(fontsize=8, markerscale=2)
    ax.grid(alpha=0.3)
fig

# %% [markdown]
# L2-normalising helps the picture of the old classes: the clusters separate (vertical
# stripes, horizontal stripes and dots each get their own region; checkerboard and diagonal
# stripes still overlap) and a point's nearest point in 2-D has its class more often than
# without it (the printed rates), although the two directions now keep a smaller share of the
# variance. For the new classes it does not help: the 2-D agreement is a little lower than
# without it, and in both pictures the frames stand apart most clearly while the other shapes
# overlap. Normalising changes how the
# picture spends its two directions; it cannot separate classes the backbone did not learn to
# separate.

# %% [markdown]
# ## 5. Transfer: a new head on a frozen backbone
#
# `replace_head(5)` puts a fresh `Linear(512, 5)` on the network and `freeze_backbone()` stops every
# other parameter from training (and keeps the backbone's batch norm in eval mode). The backbone is
# then a fixed function, so training the head on the model is the same as training a `Linear` on
# precomputed embeddings, which saves running the backbone at every step. One step both ways
# gives the same head gradient:

# %%
model.replace_head(5, rng=np.random.default_rng(1))
model.freeze_backbone()
print(f"trainable parameters: {model.num_parameters(trainable_only=True):,} of {model.num_parameters():,}")

x = transform(new_train.images[:32], rng)
y = new_train.labels[:32]
model.train()  # the frozen backbone stays in eval mode
model.zero_grad()
criterion(model(x), y)
model.backward(criterion.backward())
grad_through_model = model.fc.weight.grad.copy()

model.fc.zero_grad()
criterion(model.fc(model.features(x)), y)
model.fc.backward(criterion.backward())
print(f"max |head grad via model - via embeddings| = {np.abs(grad_through_model - model.fc.weight.grad).max():.1e}")

# %% [markdown]
# Now the comparison: for `k` labelled images per new class, train a fresh head (full-batch Adam on
# standardised inputs) and measure it on the whole new-class test split. Four inputs for the same
# head: the trained backbone's embeddings, the same L2-normalised, the embeddings of a **randomly
# initialised** ResNet-18 (the architecture without the training), and the raw pixels. Which `k`
# images are labelled matters a lot when `k` is small, so each `k` is repeated for `DRAWS`
# random draws of the labelled images (and of the head's initial weights); we print the mean
# and the standard deviation over the draws.

# %%
def fit_head(inputs, labels, steps=300, seed=0):
    """A Linear head trained on (inputs, labels); returns a predict function."""
    mu, sd = inputs.mean(axis=0), inputs.std(axis=0) + 1e-6
    head = nn.Linear(inputs.shape[1], 5, rng=np.random.default_rng(seed))
    opt = optim.Adam(head.parameters(), lr=1e-2, weight_decay=1e-3)
    xs = ((inputs - mu) / sd).astype(np.float32)
    for _ in range(steps):
        opt.zero_grad()
        criterion(head(xs), labels)
        head.backward(criterion.backward())
        opt.step()
    return lambda z: head(((z - mu) / sd).astype(np.float32)).argmax(axis=1)


random_model = models.resnet18(num_classes=5, stem="imagenet", width=WIDTH, seed=123)
train_emb = extract_features(model, new_train, transform)
inputs = {
    "trained backbone": (train_emb, emb_new),
    "trained, L2-normalised": (l2_normalise(train_emb), l2_normalise(emb_new)),
    "random backbone": (extract_features(random_model, new_train, transform),
                        extract_features(random_model, new_test, transform)),
    "raw pixels": (transform(new_train.images, rng).reshape(len(new_train), -1),
                   transform(new_test.images, rng).reshape(len(new_test), -1)),
}
accuracy = {name: np.zeros((len(SHOTS), DRAWS)) for name in inputs}  # (shots, draws)
print(f"test accuracy, mean ± std over {DRAWS} draws of the labelled images")
print(f"{'per class':>9s}" + "".join(f"{name:>25s}" for name in inputs))
for i, k in enumerate(SHOTS):
    for d in range(DRAWS):
        draw = np.random.default_rng(1000 + d)
        chosen = np.concatenate([draw.choice(np.flatnonzero(new_train.labels == c), k, replace=False)
                                 for c in range(5)])
        for name, (train_in, test_in) in inputs.items():
            predict = fit_head(train_in[chosen], new_train.labels[chosen], seed=d)
            accuracy[name][i, d] = np.mean(predict(test_in) == new_test.labels)
    print(f"{k:9d}" + "".join(f"{f'{a[i].mean():.1%} ± {a[i].std(ddof=1):.1%}':>25s}" for a in accuracy.values()))
a = accuracy["trained backbone"]
print(f"trained backbone, range over the draws: "
      + ", ".join(f"k={k}: {a[i].min():.0%}-{a[i].max():.0%}" for i, k in enumerate(SHOTS)))
t975 = {2: 4.303, 9: 2.262}[DRAWS - 1]  # Student's t quantile for DRAWS - 1 degrees of freedom
print(f"half-width of a 95% interval for each mean (t = {t975} times std / sqrt(draws)), trained backbone: "
      + ", ".join(f"k={k}: {t975 * a[i].std(ddof=1) / np.sqrt(DRAWS):.1%}" for i, k in enumerate(SHOTS)))

# %%
fig, ax = new_figure(7, 4.2)
ax.set_xscale("log")
for j, (name, accs) in enumerate(accuracy.items()):
    shift = 1 + 0.03 * (j - 1.5)  # spread the markers a little so that the error bars do not overlap
    ax.errorbar(np.array(SHOTS) * shift, 100 * accs.mean(axis=1), yerr=100 * accs.std(axis=1, ddof=1),
                fmt="o-", capsize=3, label=name)
ax.axhline(20, color="grey", ls=":", label="chance")
ax.set(xlabel="labelled images per new class", ylabel="test accuracy on the new classes (%)",
       title=f"a new head on each representation (mean ± std over {DRAWS} draws)")
ax.set_xticks(SHOTS, [str(k) for k in SHOTS])
ax.tick_params(axis="x", which="minor", labelbottom=False)
ax.grid(alpha=0.3, which="both")
ax.legend(fontsize=8)
fig

# %% [markdown]
# On the trained backbone's embeddings the head is above chance (20%) on average from one
# labelled image per class on, and its mean accuracy rises with every step in `k` in this run.
# The spread between draws is large for few shots: with one image per class single draws range
# from below chance to about 40% (the printed range), and the 95% intervals of the means at 1,
# 2 and 5 shots are several points wide, so one draw per `k` can easily come out in the wrong
# order. From ten images per class on the draws differ by a few points. The random backbone and
# the raw pixels reach only about 30% at 100 images per class. The trained backbone is ahead of
# both at every `k`: at one shot by about one draw-to-draw standard deviation, from five shots
# on by several. L2-normalising the embeddings before the head makes no difference beyond the
# spread between draws.
#
# ## Exercises
#
# Checked in section 4: `pca_2d` (your SVD projection, compared with the library's column by
# column up to sign). The rest are open questions.
#
# 1. Use Euclidean distance instead of cosine similarity for the nearest neighbours. Does it
#    matter? (Look at the spread of the embedding lengths printed in section 4.)
# 2. Redo the PCA picture for the random backbone's embeddings.
# 3. Unfreeze the backbone (`model.freeze_backbone(False)`) and fine-tune the whole network on
#    20 images per new class with a small learning rate. Does it beat the frozen head?
# 4. Swap the roles: train the backbone on the shape classes and transfer to the textures.
# 5. Replace the linear head by a 1-nearest-neighbour classifier on the `k` labelled embeddings.

"""Exercise: principal component analysis by SVD, projecting embeddings onto two directions.

With ``Xc = X - mean(X)`` and the SVD ``Xc = U S Vᵀ``, the rows of ``Vᵀ`` are the principal
directions, in order of decreasing variance ``S² / (N - 1)``; the 2-D view is
``Xc @ Vᵀ[:2].T``. A direction's sign is arbitrary, so the check compares each column
up to its sign.
"""

from __future__ import annotations

import numpy as np

from nnscratch.exercises.checking import Case, Exercise, Mistake, Output, call


def pca_2d(emb: np.ndarray) -> np.ndarray:
    """The projection (N, 2) of the centred rows of ``emb`` (N, D) onto its first two
    principal directions."""
    centred = emb - emb.mean(axis=0)
    _, _, Vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ Vt[:2].T


def _signs_fixed(fn, args) -> np.ndarray:
    """Run ``fn``, then flip each column so that its largest entry (in size) is positive."""
    proj = np.asarray(call(fn, args), dtype=float)
    if proj.ndim != 2 or proj.shape[1] != 2:
        return proj  # the shape refusal names the problem
    largest = proj[np.abs(proj).argmax(axis=0), np.arange(2)]
    return proj * np.where(largest < 0, -1.0, 1.0)


def _cases() -> list[Case]:
    rng = np.random.default_rng(21)
    cases = []
    for words, N, D in (
        ("100 embeddings of size 8", 100, 8),
        ("7 embeddings of size 5", 7, 5),
        ("60 embeddings of size 16, far from the origin", 60, 16),
    ):
        scales = np.linspace(3.0, 0.2, D)  # distinct variances: the directions are defined
        rotation, _ = np.linalg.qr(rng.standard_normal((D, D)))
        emb = (rng.standard_normal((N, D)) * scales) @ rotation.T
        if "far" in words:
            emb += 10 * rng.standard_normal(D)
        cases.append(Case(words, {"emb": emb}))
    return cases


def _svd(emb: np.ndarray):
    return np.linalg.svd(emb - emb.mean(axis=0), full_matrices=False)


PCA_2D = Exercise(
    name="pca_2d",
    title="a 2-D view of embeddings by PCA, computed with the SVD",
    signature="pca_2d(emb) -> proj",
    task="""
emb is (N, D) float64, one embedding per row. Centre it (subtract the mean row), take the
SVD of the centred matrix, and return proj (N, 2): the centred rows projected onto the
first two principal directions (the first two rows of Vᵀ, the directions of largest
variance). A direction's sign is arbitrary; the check compares each column up to sign.
""",
    outputs=(Output("proj"),),
    reference=pca_2d,
    cases=_cases,
    run=_signs_fixed,
    mistakes=(
        Mistake(
            "centre the embeddings first: without subtracting the mean row, the first "
            "direction points at the mean instead of along the largest variance",
            lambda emb: emb @ np.linalg.svd(emb, full_matrices=False)[2][:2].T,
        ),
        Mistake(
            "the directions are the rows of Vᵀ (its first two rows), not its first two columns",
            lambda emb: (emb - emb.mean(axis=0)) @ _svd(emb)[2][:, :2],
        ),
        Mistake(
            "U[:, :2] alone gives unit-length coordinates: each column of the projection "
            "keeps its direction's scale, its singular value",
            lambda emb: _svd(emb)[0][:, :2],
        ),
        Mistake(
            "numpy returns the singular values in decreasing order: the first two directions "
            "are the first two rows of Vᵀ, not the last two",
            lambda emb: (emb - emb.mean(axis=0)) @ _svd(emb)[2][-2:][::-1].T,
        ),
        Mistake(
            "the columns come in order, largest variance first: proj[:, 0] on the first "
            "direction, proj[:, 1] on the second",
            lambda emb: (emb - emb.mean(axis=0)) @ _svd(emb)[2][1::-1].T,
        ),
    ),
)

# Solutions of the checked exercises of notebooks/07_features_and_transfer.ipynb
# (`python notebooks/run_notebooks.py --solutions 07`).

# %% exercise: pca_2d
def pca_2d(emb):
    centred = emb - emb.mean(axis=0)
    U, S, Vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ Vt[:2].T  # = U[:, :2] * S[:2]

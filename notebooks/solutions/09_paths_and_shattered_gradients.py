# Solutions of the checked exercises of notebooks/09_paths_and_shattered_gradients.ipynb
# (`python notebooks/run_notebooks.py --solutions 09`).

# %% exercise: path_length_counts
def path_length_counts(n):
    return np.array([math.comb(n, k) for k in range(n + 1)])  # C(n, k): which k blocks branch

# %% exercise: routed_gradient
def routed_gradient(dy, backwards, path):
    d = dy
    for (branch_backward, shortcut_backward), branch in zip(reversed(backwards), reversed(path)):
        d = branch_backward(d) if branch else shortcut_backward(d)
    return d

# %% exercise: autocorrelation
def autocorrelation(s):
    c = s - s.mean()
    P = len(c)
    return np.correlate(c, c, "full")[P - 1 :] / (c @ c)  # lag 0 sits in the middle of "full"

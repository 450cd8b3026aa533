# Solutions of the checked exercises of notebooks/03_residual_block.ipynb
# (`python notebooks/run_notebooks.py --solutions 03`).

# %% exercise: residual_backward
def residual_backward(dy, out, main_backward, shortcut_backward):
    ds = np.where(out > 0, dy, 0.0)  # the ReLU after the +: relu'(0) = 0
    return main_backward(ds) + shortcut_backward(ds)  # fan-out, then the sum at x

# %% exercise: basic_block_params
answer = 2 * (64 * 64 * 3 * 3) + 2 * (2 * 64)  # two 3x3 convs, two BNs (gamma and beta)

# Solutions of the checked exercises of notebooks/08_identity_mappings.ipynb
# (`python notebooks/run_notebooks.py --solutions 08`).

# %% exercise: preact_residual_backward
def preact_residual_backward(dy, out, pre_backward, branch_backward, shortcut_backward, shared):
    # Nothing follows the `+`: dy reaches both sides as it is (out is not needed).
    if shared:  # h = pre(x) feeds both sides, so both gradients go back through pre
        return pre_backward(branch_backward(dy) + shortcut_backward(dy))
    return pre_backward(branch_backward(dy)) + shortcut_backward(dy)  # the shortcut carries x

# %% exercise: unrolled_gradient
def unrolled_gradient(d_top, branch_backwards):
    g = d_top  # dL/dx_n
    for branch_backward in reversed(branch_backwards):  # from the top block down
        g = g + branch_backward(g)  # the shortcut passes g on, the branch adds its part
    return g

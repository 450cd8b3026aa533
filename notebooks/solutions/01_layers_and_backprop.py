# Solutions of the checked exercises of notebooks/01_layers_and_backprop.ipynb.
# `python notebooks/run_notebooks.py --solutions 01` runs the lesson with these in place of
# the stubs; every check must then pass (tests/test_notebooks.py).

# %% exercise: im2col
def im2col(x, KH, KW, stride, padding):
    N, C, H, W = x.shape
    H_out = (H + 2 * padding - KH) // stride + 1
    W_out = (W + 2 * padding - KW) // stride + 1
    x_pad = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    cols = np.empty((C, KH, KW, N, H_out, W_out), dtype=x.dtype)
    for i in range(KH):
        for j in range(KW):  # the (i, j) entry of every window, for all windows at once
            rows = slice(i, i + stride * H_out, stride)
            columns = slice(j, j + stride * W_out, stride)
            cols[:, i, j] = x_pad[:, :, rows, columns].transpose(1, 0, 2, 3)
    return cols.reshape(C * KH * KW, N * H_out * W_out)

# %% exercise: conv2d_forward
def conv2d_forward(x, w, b, stride, padding):
    N = x.shape[0]
    C_out, _, KH, KW = w.shape
    cols = im2col(x, KH, KW, stride, padding)  # (C_in*KH*KW, N*H_out*W_out)
    H_out = (x.shape[2] + 2 * padding - KH) // stride + 1
    W_out = (x.shape[3] + 2 * padding - KW) // stride + 1
    Y = w.reshape(C_out, -1) @ cols + b[:, None]  # (C_out, N*H_out*W_out)
    return Y.reshape(C_out, N, H_out, W_out).transpose(1, 0, 2, 3)

# %% exercise: col2im
def col2im(dcols, x_shape, KH, KW, stride, padding):
    N, C, H, W = x_shape
    H_out = (H + 2 * padding - KH) // stride + 1
    W_out = (W + 2 * padding - KW) // stride + 1
    d = dcols.reshape(C, KH, KW, N, H_out, W_out)
    dx_pad = np.zeros((N, C, H + 2 * padding, W + 2 * padding), dtype=dcols.dtype)
    for i in range(KH):
        for j in range(KW):
            rows = slice(i, i + stride * H_out, stride)
            columns = slice(j, j + stride * W_out, stride)
            dx_pad[:, :, rows, columns] += d[:, i, j].transpose(1, 0, 2, 3)  # add, never assign
    return dx_pad[:, :, padding : padding + H, padding : padding + W]

# %% exercise: conv2d_backward
def conv2d_backward(dy, x, w, stride, padding):
    C_out, _, KH, KW = w.shape
    dY = dy.transpose(1, 0, 2, 3).reshape(C_out, -1)  # (C_out, N*H_out*W_out), like Y
    cols = im2col(x, KH, KW, stride, padding)
    db = dY.sum(axis=1)
    dw = (dY @ cols.T).reshape(w.shape)
    dx = col2im(w.reshape(C_out, -1).T @ dY, x.shape, KH, KW, stride, padding)
    return dx, dw, db

# %% exercise: linear
def linear_forward(x, w, b):
    return x @ w.T + b, (x, w)


def linear_backward(dy, cache):
    x, w = cache
    return dy @ w, dy.T @ x, dy.sum(axis=0)

# %% exercise: relu_backward
def relu_backward(dy, x):
    return np.where(x > 0, dy, 0.0)

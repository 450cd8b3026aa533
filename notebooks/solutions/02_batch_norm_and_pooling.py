# Solutions of the checked exercises of notebooks/02_batch_norm_and_pooling.ipynb
# (`python notebooks/run_notebooks.py --solutions 02`).

# %% exercise: batch_norm_backward
def batch_norm_backward(dy, x, gamma, eps):
    axes = (0, 2, 3)
    M = x.size // x.shape[1]
    mu = x.mean(axis=axes, keepdims=True)  # the forward, recomputed
    xc = x - mu
    var = (xc**2).mean(axis=axes, keepdims=True)
    inv_std = 1.0 / np.sqrt(var + eps)
    xhat = xc * inv_std
    dbeta = dy.sum(axis=axes)  # y = gamma * xhat + beta
    dgamma = (dy * xhat).sum(axis=axes)
    dxhat = dy * gamma[None, :, None, None]
    dinv_std = (dxhat * xc).sum(axis=axes, keepdims=True)  # xhat = xc * inv_std
    dxc = dxhat * inv_std
    dvar = dinv_std * -0.5 * (var + eps) ** -1.5  # inv_std = (var + eps) ** -0.5
    dxc = dxc + dvar * 2 * xc / M  # var = mean(xc ** 2)
    dmu = -dxc.sum(axis=axes, keepdims=True)  # xc = x - mu
    return dxc + dmu / M, dgamma, dbeta  # mu = mean(x)

# %% exercise: batch_norm_forward
def batch_norm_forward(x, gamma, beta, running_mean, running_var, momentum, eps):
    axes = (0, 2, 3)
    M = x.size // x.shape[1]
    mean, var = x.mean(axis=axes), x.var(axis=axes)  # biased, to normalise
    xhat = (x - mean[:, None, None]) / np.sqrt(var[:, None, None] + eps)
    y = gamma[:, None, None] * xhat + beta[:, None, None]
    new_mean = (1 - momentum) * running_mean + momentum * mean
    new_var = (1 - momentum) * running_var + momentum * var * M / (M - 1)  # unbiased
    return y, new_mean, new_var

# %% exercise: max_pool_backward
def max_pool_backward(dy, x, kernel_size, stride):
    N, C, H_out, W_out = dy.shape
    dx = np.zeros_like(x)
    for p in range(H_out):
        for q in range(W_out):
            h, w = p * stride, q * stride
            window = x[:, :, h : h + kernel_size, w : w + kernel_size].reshape(N, C, -1)
            k = window.argmax(axis=2)  # the first maximum in row-major order
            i, j = np.divmod(k, kernel_size)
            n, c = np.meshgrid(np.arange(N), np.arange(C), indexing="ij")
            dx[n, c, h + i, w + j] += dy[:, :, p, q]  # overlapping windows add up
    return dx

# %% exercise: global_avg_pool_backward
def global_avg_pool_backward(dy, x_shape):
    N, C, H, W = x_shape
    return np.broadcast_to(dy[:, :, None, None] / (H * W), x_shape).copy()

# Solutions of the checked exercises of notebooks/05_training_resnet18.ipynb
# (`python notebooks/run_notebooks.py --solutions 05`).

# %% exercise: cross_entropy
def cross_entropy_forward(logits, targets):
    shifted = logits - logits.max(axis=1, keepdims=True)  # exp cannot overflow
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    N = len(targets)
    return float(-log_p[np.arange(N), targets].mean()), (np.exp(log_p), targets)


def cross_entropy_backward(dloss, cache):
    p, targets = cache
    dlogits = p.copy()
    dlogits[np.arange(len(targets)), targets] -= 1
    return dloss * dlogits / len(targets)

# %% exercise: sgd_momentum_step
def sgd_momentum_step(p, grad, buf, lr, momentum, weight_decay):
    g = grad + weight_decay * p  # L2 decay joins the gradient first
    buf = momentum * buf + g
    return p - lr * buf, buf

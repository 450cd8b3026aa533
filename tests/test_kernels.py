"""The fast paths behind the ops: chunked im2col GEMMs, the 1x1 shortcut, batch-norm
statistics in float32, and ReLU's edge cases. Each is compared with a plain reference."""

import numpy as np
import pytest
from conftest import readonly

import nnscratch.functional as F
from nnscratch.functional import fast
from nnscratch.functional.fast import scratch as scratch_space
from nnscratch.functional.fast import workers as worker_pool


def conv_case(rng, N, C_in, H, W, C_out, k, dtype=np.float64):
    x = rng.standard_normal((N, C_in, H, W)).astype(dtype)
    w = rng.standard_normal((C_out, C_in, k, k)).astype(dtype)
    b = rng.standard_normal(C_out).astype(dtype)
    return x, w, b


@pytest.mark.parametrize("workers", [1, 2, 3])
@pytest.mark.parametrize("chunk_images", [1, 2, 3])
@pytest.mark.parametrize("stride, padding", [(1, 1), (2, 1), (2, 0)])
def test_chunked_conv_matches_naive(workers, chunk_images, stride, padding, rng, monkeypatch):
    """1-3 worker threads, a chunk budget of 1-3 images: per-image GEMMs, uneven last
    chunks and shares, strided outputs."""
    monkeypatch.setenv("NNSCRATCH_NUM_THREADS", str(workers))
    monkeypatch.setattr(worker_pool, "_available_cores", lambda: 4)  # 3 shares on any machine
    monkeypatch.setattr(worker_pool, "MIN_SPLIT_SIZE", 0)  # split even these small arrays
    x, w, b = conv_case(rng, 5, 3, 7, 6, 4, 3)
    kw = {"stride": stride, "padding": padding}
    y_ref, cache_ref = F.conv2d_naive_forward(x, w, b, **kw)
    rows, L = 3 * 9, y_ref.shape[2] * y_ref.shape[3]
    monkeypatch.setattr(scratch_space, "CHUNK_BYTES", chunk_images * rows * L * x.itemsize)
    y, cache = fast.conv2d_forward(x, w, b, **kw)
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=1e-10)
    dy = readonly(rng.standard_normal(y.shape))
    for got, want in zip(fast.conv2d_backward(dy, cache), F.conv2d_naive_backward(dy, cache_ref)):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_pointwise_conv_skips_im2col_and_matches_naive(dtype, workers, rng, monkeypatch):
    monkeypatch.setenv("NNSCRATCH_NUM_THREADS", str(workers))
    monkeypatch.setattr(worker_pool, "MIN_SPLIT_SIZE", 0)
    x, w, b = conv_case(rng, 3, 5, 4, 6, 7, 1, dtype)
    y, cache = fast.conv2d_forward(x, w, b)
    assert cache.geom.pointwise
    y_ref, cache_ref = F.conv2d_naive_forward(*(a.astype(np.float64) for a in (x, w, b)))
    tol = 1e-10 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(y, y_ref, rtol=tol, atol=tol)
    dy = rng.standard_normal(y.shape).astype(dtype)
    grads = fast.conv2d_backward(readonly(dy), cache)
    for got, want in zip(grads, F.conv2d_naive_backward(dy.astype(np.float64), cache_ref)):
        assert got.dtype == dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())


def test_scratch_buffers_never_leak_into_results(rng):
    """Outputs are fresh arrays: a later call, reusing the scratch space, leaves them alone."""
    x, w, _ = conv_case(rng, 4, 3, 6, 6, 5, 3, np.float32)
    y1, cache1 = fast.conv2d_forward(x, w, padding=1)
    dx1, dw1, _ = fast.conv2d_backward(np.ones_like(y1), cache1)
    saved = [a.copy() for a in (y1, dx1, dw1)]
    y2, cache2 = fast.conv2d_forward(x * 2, w, padding=1)
    fast.conv2d_backward(np.ones_like(y2), cache2)
    for a, b in zip((y1, dx1, dw1), saved):
        np.testing.assert_array_equal(a, b)


def test_im2col_col2im_adjoint_strided_non_square(rng):
    x = rng.standard_normal((2, 3, 9, 7))
    g = F.conv.conv_geometry("t", x, np.zeros((1, 3, 3, 2)), (2, 3), (1, 2))
    cols = F.im2col(x, g)
    c = rng.standard_normal(cols.shape)
    assert np.sum(cols * c) == pytest.approx(np.sum(x * F.col2im(c, x.shape, g)), rel=1e-12)


def test_batch_norm_float32_statistics_survive_a_large_offset(rng):
    """Mean 1000, variance 1: E[x^2] - E[x]^2 would lose every digit in float32."""
    x = (1000 + rng.standard_normal((16, 2, 16, 16))).astype(np.float32)
    C = 2
    y, cache = fast.batch_norm2d_forward(
        x,
        np.ones(C, np.float32),
        np.zeros(C, np.float32),
        np.zeros(C, np.float32),
        np.ones(C, np.float32),
        training=True,
    )
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(cache.mean, x64.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3), dtype=np.float64), 1, rtol=1e-3)
    assert y.dtype == np.float32 and cache.mean.dtype == np.float32


def test_relu_keeps_nan_and_dtype():
    x = np.array([-1.0, 0.0, 2.0, np.nan], dtype=np.float32)
    y, cache = fast.relu_forward(x)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y[:3], [0, 0, 2])
    assert np.isnan(y[3])
    dx = fast.relu_backward(readonly(np.ones(4, np.float32)), cache)
    np.testing.assert_array_equal(dx, [0, 0, 1, 0])


def test_float32_training_step_stays_float32(rng):
    """Every layer of a float32 step takes and returns float32, and so do its gradients."""
    from nnscratch import models, nn, optim

    model = models.create("resnet20", width=0.25, seed=0)
    seen = []

    def spy(module, method):
        original = getattr(module, method)

        def checked(*args):
            out = original(*args)
            arrays = [a for a in (*args, out) if isinstance(a, np.ndarray)]
            seen.append((type(module).__name__, method, {a.dtype for a in arrays}))
            return out

        module.__dict__[method] = checked

    for module in model.modules():
        spy(module, "forward")
        spy(module, "backward")
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    criterion = nn.CrossEntropyLoss()
    x = rng.standard_normal((4, 3, 8, 8)).astype(np.float32)
    for _ in range(2):
        model.zero_grad()
        criterion(model(x), np.arange(4))
        model.backward(criterion.backward())
        opt.step()
    assert seen and all(dtypes == {np.dtype(np.float32)} for *_, dtypes in seen), [
        s for s in seen if s[2] != {np.dtype(np.float32)}
    ]
    for p in model.parameters():
        assert p.data.dtype == p.grad.dtype == np.float32


def test_chunks_keep_their_rows_off_multiples_of_4_kb(monkeypatch):
    """1024 float32 tiles a row would alias in the caches: 15 images of 64 tiles instead of
    16; rows that are 4 kB per image cannot avoid it and keep the size that fits."""

    def sizes(n, rows, L, itemsize):
        runs = list(scratch_space.image_chunks(0, n, rows, L, itemsize))
        assert [a for a, _ in runs] == [0] + [b for _, b in runs[:-1]] and runs[-1][1] == n
        return [b - a for a, b in runs]

    assert sizes(64, 16 * 32, 64, 4) == [15] * 4 + [4]  # 2 MB fit 16 images of 128 kB
    assert sizes(64, 16 * 32, 64, 8) == [7] * 9 + [1]  # float64: 8 would fit
    assert sizes(9, 10, 1024, 4) == [9]  # 4 kB an image: no choice
    monkeypatch.setattr(scratch_space, "ALIAS_BYTES", 0)
    assert sizes(64, 16 * 32, 64, 4) == [16] * 4

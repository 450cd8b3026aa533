"""Shattered gradients: the autocorrelations, the per-point gradients (finite differences,
independence of the batch), the plain-vs-residual fact on small nets, the command."""

import csv
import json

import numpy as np
import pytest

from nnscratch.cli import main
from nnscratch.experiments import build_model
from nnscratch.experiments.shattered import (
    autocorrelation,
    calibrate_batch_norm,
    gradient_correlation,
    half_lag,
    input_gradients,
    line_inputs,
    shattered_gradients,
    shattered_study,
)
from nnscratch.nn import BatchNorm2d
from nnscratch.nn.grad_mode import no_grad

SMALL = dict(width=0.25, image_size=8, points=64)  # 4/8/16 channels: fast, same facts


# ------------------------------------------------------------------ the autocorrelations


def test_autocorrelation_is_one_at_lag_zero_and_the_textbook_formula(rng):
    for scale in (1e-120, 1.0, 1e120):
        s = scale * rng.standard_normal(50)
        r = autocorrelation(s)
        assert r[0] == 1.0 and r.shape == (50,)
        d = s - s.mean()
        expected = np.correlate(d, d, mode="full")[len(d) - 1 :] / (d @ d)
        np.testing.assert_allclose(r, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(autocorrelation(np.full(7, 3.0)), np.ones(7))


def test_white_noise_decorrelates_at_lag_one_and_a_random_walk_does_not(rng):
    noise = rng.standard_normal(4096)
    walk = np.cumsum(noise)
    assert abs(autocorrelation(noise)[1]) < 4 / np.sqrt(4096)
    assert autocorrelation(walk)[1] > 0.95
    assert half_lag(autocorrelation(noise)) == 1 and half_lag(autocorrelation(walk)) > 50
    assert half_lag(np.ones(5)) is None


def test_gradient_correlation_is_the_mean_cosine_at_each_lag(rng):
    g = rng.standard_normal((9, 2, 3, 3)) * 1e-200  # tiny: the squares underflow
    c = gradient_correlation(g)
    assert c[0] == 1.0
    flat = g.reshape(9, -1) * 1e200
    for k in (1, 4, 8):
        cosines = [
            flat[t] @ flat[t + k] / np.linalg.norm(flat[t]) / np.linalg.norm(flat[t + k])
            for t in range(9 - k)
        ]
        assert c[k] == pytest.approx(np.mean(cosines), rel=1e-12)
    same = np.broadcast_to(rng.standard_normal(6), (5, 6))
    np.testing.assert_allclose(gradient_correlation(same), 1.0, rtol=1e-14)


def test_line_inputs_are_evenly_spaced_on_a_line_of_the_asked_span(rng):
    t, x, v = line_inputs(5, image_size=4, channels=2, span=0.5, rng=rng)
    np.testing.assert_array_equal(t, [-1, -0.5, 0, 0.5, 1])
    x0 = x[2]
    assert np.linalg.norm(v) == pytest.approx(0.5 * np.linalg.norm(x0))
    np.testing.assert_allclose(x, x0 + t[:, None, None, None] * v, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="points must be at least 2"):
        line_inputs(1, rng=rng)


# ------------------------------------------------------------------ per-point gradients


def _calibrated_net(rng, *, residual, batch_norm, channels=1):
    net = build_model(
        "resnet14",
        residual=residual,
        batch_norm=batch_norm,
        width=0.25,
        in_channels=channels,
        seed=1,
        dtype="float64",
    )
    calibrate_batch_norm(net, rng.standard_normal((16, channels, 6, 6)))
    u = rng.standard_normal(net.num_classes)
    return net, u / np.linalg.norm(u)


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("batch_norm", [True, False])
def test_gradients_equal_central_differences_of_the_output(rng, residual, batch_norm):
    net, u = _calibrated_net(rng, residual=residual, batch_norm=batch_norm)
    _, x, _ = line_inputs(8, image_size=6, channels=1, rng=rng)
    f, g = input_gradients(net, x, u)
    h, basis = 1e-6, np.eye(36).reshape(36, 1, 6, 6)
    for i in (0, 3, 7):
        with no_grad():  # the 72 shifted images in one batch: eval mode keeps them apart
            shifted = net(np.concatenate([x[i] + h * basis, x[i] - h * basis])) @ u
        numeric = (shifted[:36] - shifted[36:]) / (2 * h)
        scale = np.abs(g[i]).max()
        np.testing.assert_allclose(g[i].ravel(), numeric, rtol=1e-6, atol=1e-6 * scale)
        with no_grad():
            assert f[i] == pytest.approx(net(x[i : i + 1])[0] @ u, rel=1e-12)


def test_each_points_gradient_does_not_depend_on_the_others(rng):
    net, u = _calibrated_net(rng, residual=False, batch_norm=True, channels=3)
    _, x, _ = line_inputs(6, image_size=6, channels=3, rng=rng)
    _, together = input_gradients(net, x, u)
    for i in (0, 4):
        _, alone = input_gradients(net, x[i : i + 1], u)
        np.testing.assert_allclose(alone[0], together[i], rtol=1e-10, atol=1e-14)
    # the batch statistics of a training-mode forward would mix the points
    net.train()
    _, mixed = input_gradients(net, x, u)
    assert not np.allclose(mixed, together, rtol=1e-3)


def test_calibration_sets_the_running_statistics_and_restores_momentum(rng):
    net = build_model("resnet8", width=0.25, seed=0, dtype="float64")
    x = rng.standard_normal((8, 3, 6, 6))
    calibrate_batch_norm(net, x)
    assert not net.training
    stem = net.bn1
    assert isinstance(stem, BatchNorm2d) and stem.momentum == 0.1
    with no_grad():
        z = net.conv1(x)
    np.testing.assert_allclose(stem.running_mean, z.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(stem.running_var, z.var(axis=(0, 2, 3), ddof=1), rtol=1e-12)


def test_the_study_gives_each_line_point_the_same_gradient_whatever_the_other_points():
    # t = -1, 0, 1 are points of both lines: x0, v, u and the calibration do not depend on P
    coarse = shattered_gradients("resnet8", **{**SMALL, "points": 3})
    fine = shattered_gradients("resnet8", **{**SMALL, "points": 5})
    np.testing.assert_allclose(fine["curve"][::2], coarse["curve"], rtol=1e-10)
    np.testing.assert_allclose(fine["output"][::2], coarse["output"], rtol=1e-10)


# ------------------------------------------------------------------ the finding


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("batch_norm", [True, False])
def test_deep_plain_gradients_decorrelate_faster_than_residual_ones(seed, batch_norm):
    """Balduzzi et al. Fig. 2 at small scale: over the first lags r(k) of the plain net
    lies below its residual twin's, and so does the cosine of neighbouring gradients."""
    runs = {
        residual: shattered_gradients(
            "resnet32", residual=residual, batch_norm=batch_norm, seed=seed, **SMALL
        )
        for residual in (False, True)
    }
    plain, residual = runs[False], runs[True]
    assert plain["autocorrelation"][0] == 1.0 == residual["autocorrelation"][0]
    assert np.mean(plain["autocorrelation"][1:5]) < np.mean(residual["autocorrelation"][1:5])
    assert plain["cosine_lag1"] < residual["cosine_lag1"]


def test_study_rows_and_bad_names():
    result = shattered_study([8, 14], batch_norm=(True,), **{**SMALL, "points": 16})
    rows = result["runs"]
    assert [(r["model"], r["residual"]) for r in rows] == [
        ("resnet8", False),
        ("resnet8", True),
        ("resnet14", False),
        ("resnet14", True),
    ]
    assert all(len(r["curve"]) == 16 and r["autocorrelation"][0] == 1.0 for r in rows)
    assert all("curve" not in row and "acf_lag1" in row for row in result["table"])
    with pytest.raises(ValueError, match="unknown model 'resnet10'"):
        shattered_study([10])
    with pytest.raises(ValueError, match="unknown model 'vgg8'"):
        shattered_study([8], family="vgg")


# ------------------------------------------------------------------ command line


def test_cli_writes_its_files(tmp_path, capsys):
    out = tmp_path / "sh"
    argv = ["shattered", "--depths", "8", "14", "--points", "16", "--width", "0.25"]
    assert main([*argv, "--image-size", "8", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "resnet14" in printed and "first k: r(k) < 0.5" in printed
    result = json.loads((out / "shattered.json").read_text())
    assert len(result["runs"]) == 8 and len(result["t"]) == 16
    with open(out / "shattered.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and {"depth", "residual", "batch_norm", "acf_lag1"} <= set(rows[0])
    assert (out / "shattered.png").stat().st_size > 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--depths", "10"], "unknown model 'resnet10'"),
        (["--family", "vgg"], "unknown model 'vgg8'"),
        (["--points", "1"], "points must be at least 2"),
        (["--span", "0"], "span must be positive"),
        (["--width", "0"], "width must be a finite number above 0"),
        (["--image-size", "0"], "must be positive"),
    ],
)
def test_cli_bad_input_is_one_line(argv, message, capsys, tmp_path):
    assert main(["shattered", *argv, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


def test_help_lists_options_and_examples(capsys):
    with pytest.raises(SystemExit):
        main(["shattered", "--help"])
    text = capsys.readouterr().out
    assert "examples:" in text and "--depths" in text and "--family" in text

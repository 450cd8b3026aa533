"""Shared test helpers."""

import os
import tempfile
from types import SimpleNamespace

import numpy as np
import pytest

import nnscratch.functional as readable
import nnscratch.functional.fast as fast
from nnscratch.functional.fast import conv as fast_conv
from nnscratch.functional.fast import winograd

# Exercise checks keep the learner's progress in a file; the tests' checks (and the notebooks'
# kernels, which inherit the environment) keep theirs out of the home directory.
os.environ["NNSCRATCH_PROGRESS"] = os.path.join(tempfile.mkdtemp(), "exercises.json")

# A run of `nnscratch train` that takes seconds: a quarter-width ResNet-20 on 240 synthetic
# images (216 for training, 6 batches of 32 per epoch), 40 test images.
TINY_FLAGS = "--model resnet20 --width 0.25 --n-train 240 --n-test 40 --batch-size 32 --seed 3 --no-progress".split()


# Convolutions to test on, (N, C_in, H, W, C_out, kernel, stride, padding): batch 1, odd and
# non-square sizes and kernels, stride 1 and 2, padding 0/1/3, kernels 1/3/7 (1x1 with stride 1
# is the fast tier's pointwise path), C_in != C_out, and one of a realistic size.
CONV_SWEEP = [
    (1, 3, 7, 5, 4, 3, 1, 1),
    (2, 3, 7, 5, 5, (3, 2), 2, 1),
    (1, 2, 9, 9, 3, 7, 2, 3),
    (3, 4, 6, 6, 2, 1, 1, 0),
    (2, 4, 8, 8, 6, 1, 2, 0),
    (2, 1, 11, 6, 2, (1, 5), (2, 1), (0, 2)),
    (1, 5, 4, 4, 3, 3, 1, 3),
    (2, 2, 5, 7, 3, 7, 1, 3),
    (4, 8, 16, 16, 8, 3, 1, 1),
    # 3x3, stride 1, padding 1 with 16+ channels: the fast tier's Winograd path (odd sizes
    # crop its last tiles; a 1x1 or 2x9 plane is one tile high; from 16 wide, the output
    # tiles are written by a kernel)
    (2, 16, 5, 3, 17, 3, 1, 1),
    (2, 16, 17, 19, 16, 3, 1, 1),
    (3, 16, 1, 1, 16, 3, 1, 1),
    (1, 20, 2, 9, 16, 3, 1, 1),
]


def nontrivial_norms(model, rng: np.random.Generator) -> None:
    """Non-trivial batch-norm gamma and beta (every 1-D parameter but the head's), so that a
    whole-network gradient check exercises them."""
    for name, p in model.named_parameters():
        if p.data.ndim == 1 and "fc" not in name:
            p.data[...] = (
                rng.uniform(0.6, 1.4, p.shape)
                if name.endswith("weight")
                else rng.normal(0, 0.2, p.shape)
            )


def readonly(a: np.ndarray) -> np.ndarray:
    """A read-only copy: any in-place write into it by a backward raises ValueError."""
    a = np.array(a)
    a.setflags(write=False)
    return a


def kink_free(a: np.ndarray, margin: float = 0.1) -> np.ndarray:
    """Push entries away from 0 so finite differences never cross ReLU's kink."""
    return np.where(np.abs(a) < margin, np.sign(a + 1e-12) * (margin + np.abs(a)), a)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(params=["rule", "winograd_wherever_it_applies", "winograd_split_by_channels"])
def conv_paths(request, monkeypatch):
    """The fast tier's convolution paths three ways: as the rule picks them, Winograd for
    every layer it can compute, and Winograd with the cores sharing channels."""
    if request.param != "rule":
        monkeypatch.setattr(fast_conv, "WINOGRAD_MIN_CHANNELS_SMALL_PLANE", 1)
    if request.param == "winograd_split_by_channels":
        monkeypatch.setattr(winograd, "CHANNEL_SPLIT_BYTES", 0)
    return request.param


@pytest.fixture(params=["readable", "fast"])
def F(request):
    """The op tier under test: ``nnscratch.functional``, or it with the fast versions in."""
    if request.param == "readable":
        return readable
    ops = {name: getattr(readable, name) for name in readable.__all__}
    return SimpleNamespace(**(ops | {name: getattr(fast, name) for name in fast.__all__}))


@pytest.fixture
def tiny_trained_run(tmp_path):
    """``tmp_path / "run"``: a run of nnscratch train (ResNet-20 at quarter width, one epoch
    on 40 synthetic images)."""
    from nnscratch.training import TrainConfig, train

    config = TrainConfig(
        model="resnet20",
        width=0.25,
        n_train=40,
        n_test=20,
        batch_size=16,
        epochs=1,
        val_fraction=0.25,
        out_dir=str(tmp_path / "run"),
    )
    train(config, progress=False, log=lambda s: None)
    return tmp_path / "run"

"""The learner's tier: the reference solutions as "mine" give a readable-tier step to 1e-10,
each piece is really called, and a wrong piece is refused by name."""

from pathlib import Path

import numpy as np
import pytest

import nnscratch
from nnscratch import exercises, models, nn
from nnscratch.exercises.my_tier import LAYER_PIECES, PAIRS

CONV_PIECES = {"im2col", "col2im", "conv2d_forward", "conv2d_backward"}


def counted(piece, calls, name):
    """The piece, counting its calls into ``calls[name]`` (each function of a pair too)."""
    if isinstance(piece, tuple):
        return tuple(counted(p, calls, f"{name}.{i}") for i, p in enumerate(piece))

    def call(*args, **kwargs):
        calls[name] = calls.get(name, 0) + 1
        return piece(*args, **kwargs)

    return call


def training_step(model, x, y):
    model.zero_grad()
    criterion = nn.CrossEntropyLoss()
    logits = model(x)
    loss = criterion(logits, y)
    dx = model.backward(criterion.backward())
    grads = {name: p.grad.copy() for name, p in model.named_parameters()}
    return {"loss": np.array(loss), "logits": logits, "dx": dx, **grads, **model.state_dict()}


def assert_same_step(got, want):
    assert got.keys() == want.keys()
    for key, value in got.items():
        scale = max(np.abs(want[key]).max(), 1e-300)
        error = np.abs(value - want[key]).max() / scale
        assert error < 1e-10, f"{key}: relative difference {error:.2e}"


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    return rng.standard_normal((4, 3, 16, 16)), rng.integers(0, 10, 4)


def fresh_model(name="resnet20"):
    return models.create(name, num_classes=10, seed=0).to(np.float64)


@pytest.mark.parametrize(
    "left_out",
    [set(), {"conv2d_forward", "conv2d_backward"}],
    ids=["every piece", "conv from your im2col and col2im"],
)
def test_a_resnet20_step_on_the_reference_solutions_equals_the_readable_tier(batch, left_out):
    x, y = batch
    with nnscratch.reference_mode():
        want = training_step(fresh_model(), x, y)
    calls = {}
    mine = {
        name: counted(exercises.reference(name), calls, name)
        for name in LAYER_PIECES
        if name not in left_out and name not in {"max_pool_backward"}
    }
    with exercises.my_tier(mine) as tier:
        assert tier.name == "mine"
        calls.clear()  # the checks called them too
        got = training_step(fresh_model(), x, y)
    assert_same_step(got, want)
    called = {name.split(".")[0] for name in calls}
    expected = set(mine) - ({"im2col", "col2im"} if not left_out else set())
    assert called == expected  # every piece a ResNet-20 step uses ran


def test_max_pool_and_the_imagenet_stem(batch):
    x, y = batch
    model = "resnet18"

    def fresh():
        return models.create(model, num_classes=10, width=0.125, seed=0).to(np.float64)

    with nnscratch.reference_mode():
        want = training_step(fresh(), x, y)
    calls = {}
    piece = counted(exercises.reference("max_pool_backward"), calls, "max_pool_backward")
    with exercises.my_tier({"max_pool_backward": piece}):
        calls.clear()
        got = training_step(fresh(), x, y)
    assert_same_step(got, want)
    assert calls == {}  # the ImageNet stem pads its pooling: outside the piece's signature
    x4 = np.random.default_rng(1).standard_normal((2, 3, 6, 6))
    pool = nn.MaxPool2d(2)
    with nnscratch.reference_mode():
        y_want = pool(x4)
        dx_want = pool.backward(np.ones_like(y_want) * 0.5)
    with exercises.my_tier({"max_pool_backward": piece}):
        calls.clear()
        np.testing.assert_array_equal(pool(x4), y_want)
        np.testing.assert_array_equal(pool.backward(np.ones_like(y_want) * 0.5), dx_want)
    assert calls == {"max_pool_backward": 1}


def test_a_wrong_piece_is_refused_by_name():
    def relu_backward(dy, x):
        return np.where(x >= 0, dy, 0) * 0.5

    with pytest.raises(exercises.PieceRefused, match=r"^my_tier: your relu_backward does not"):
        with exercises.my_tier(
            {"linear": exercises.reference("linear"), "relu_backward": relu_backward}
        ):
            pass
    assert nnscratch.functional.backend.backend().name != "mine"


def test_an_unknown_piece_is_named():
    with pytest.raises(KeyError, match="pca_2d is not a layer's piece"):
        with exercises.my_tier({"pca_2d": exercises.reference("pca_2d")}):
            pass


def test_solutions_are_read_from_a_file(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(
        "def relu_backward(dy, x):\n    return np.where(x > 0, dy, 0)\n\n"
        "def linear_forward(x, w, b):\n    return x @ w.T + b, (x, w)\n\n"
        "def helper():\n    pass\n"
    )
    found = exercises.load_solutions(path)
    assert set(found) == {"relu_backward"}  # linear needs both of its pair
    assert PAIRS["linear"] == ("linear_forward", "linear_backward")
    with exercises.my_tier(path):
        layer = nn.ReLU()
        x = np.array([[-1.0, 2.0]])
        layer(x)
        np.testing.assert_array_equal(layer.backward(np.array([[3.0, 4.0]])), [[0.0, 4.0]])
    with pytest.raises(FileNotFoundError, match="no solutions file"):
        exercises.load_solutions(tmp_path / "absent.py")


def test_the_notebooks_solution_files_as_mine_train_a_resnet20_step(batch):
    x, y = batch
    folder = Path(__file__).parents[1] / "notebooks" / "solutions"
    files = [
        folder / f"{lesson}.py"
        for lesson in exercises.LESSONS
        if (folder / f"{lesson}.py").exists()
    ]
    pieces = exercises.load_solutions(*files)
    assert set(pieces) == set(LAYER_PIECES)  # the lessons ask for every layer piece
    with nnscratch.reference_mode():
        want = training_step(fresh_model(), x, y)
    with exercises.my_tier(files):
        got = training_step(fresh_model(), x, y)
    assert_same_step(got, want)


@pytest.mark.parametrize(
    "model, piece, expected_calls",
    [
        ("resnet20", "relu_backward", 19),  # the stem's, and two a block: one after the `+`
        ("resnet20", "residual_backward", 9),  # one a block
        ("preact_resnet20", "residual_backward", 0),  # nothing after the `+`: the readable sum
    ],
)
def test_the_residual_sum_runs_your_pieces_where_they_apply(batch, model, piece, expected_calls):
    x, y = batch
    with nnscratch.reference_mode():
        want = training_step(fresh_model(model), x, y)
    calls = {}
    with exercises.my_tier({piece: counted(exercises.reference(piece), calls, piece)}):
        calls.clear()
        got = training_step(fresh_model(model), x, y)
    assert_same_step(got, want)
    assert calls.get(piece, 0) == expected_calls


def test_a_residual_backward_that_forgets_the_shortcut_is_refused():
    def residual_backward(dy, out, main_backward, shortcut_backward):
        return main_backward(np.where(out > 0, dy, 0))

    with pytest.raises(exercises.PieceRefused, match=r"^my_tier: your residual_backward does not"):
        with exercises.my_tier({"residual_backward": residual_backward}):
            pass

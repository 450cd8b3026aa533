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
        assert tier.backend.name == "mine"
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


def notebook(path, *cells):
    """A minimal .ipynb with these code cells."""
    import json

    code = [{"cell_type": "code", "source": c, "metadata": {}, "outputs": []} for c in cells]
    path.write_text(json.dumps({"cells": code, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def test_pieces_from_a_notebooks_exercise_cells_and_stubs_left_out(tmp_path):
    solved = notebook(
        tmp_path / "mine.ipynb",
        "x = undefined_name  # not an exercise cell: never run",
        "# exercise: relu_backward\ndef relu_backward(dy, x):\n    return np.where(x > 0, dy, 0.0)",
        "# exercise: residual_backward\n"
        "def residual_backward(dy, out, main_backward, shortcut_backward):\n"
        "    raise NotImplementedError",
    )
    tier = exercises.my_tier(solved)
    assert tier.yours == {"relu_backward": "mine.ipynb"}
    assert "residual_backward" in tier.missing and "relu_backward" not in tier.missing
    assert "relu_backward              yours (mine.ipynb)" in str(tier)
    # the committed lessons hold only stubs: nothing is the learner's yet
    committed = exercises.my_tier(sorted(Path("notebooks").glob("0[1-5]_*.ipynb")))
    assert committed.yours == {} and committed.missing == LAYER_PIECES


def test_a_notebook_cell_that_does_not_run_alone_is_named(tmp_path):
    broken = notebook(tmp_path / "b.ipynb", "# exercise: relu_backward\nimport nothing_here")
    with pytest.raises(ValueError, match=r"b.ipynb, the cell of exercise relu_backward does not "):
        exercises.load_solutions(broken)
    (tmp_path / "c.ipynb").write_text("{not json")
    with pytest.raises(ValueError, match=r"c.ipynb is not a notebook"):
        exercises.load_solutions(tmp_path / "c.ipynb")


def test_the_tier_times_each_op_without_the_ops_it_calls(batch):
    x, y = batch
    tier = exercises.my_tier({"residual_backward": exercises.reference("residual_backward")})
    with tier:
        training_step(fresh_model(), x, y)
    times = tier.times
    assert times["residual_backward"].calls == 9 and times["conv2d_backward"].calls == 19
    assert times["cross_entropy_forward"].calls == 1 and times["tanh_forward"].calls == 0
    # 19 convolutions (zero-padding shortcuts); the sums' own time is far less than the
    # convolutions in the branches they call
    assert 0 < times["residual_backward"].seconds < times["conv2d_backward"].seconds
    assert tier.whose("residual_backward") == "yours" and tier.whose("conv2d_forward") == "library"
    relu = exercises.my_tier({"relu_backward": exercises.reference("relu_backward")})
    assert relu.whose("residual_backward") == "yours"  # the library's `+` calls your ReLU

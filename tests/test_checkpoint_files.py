"""Training checkpoints that are damaged or crafted: one clear ValueError naming the file.

The metadata (the JSON entry ``checkpoint.json``) and the model weights are validated
when the file is read, so a caller never meets an AttributeError, a RecursionError or a
NaN weight later on.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import nnscratch.io as nnio
from nnscratch.training import TrainConfig, load_checkpoint, load_weights, save_checkpoint


def make_checkpoint() -> dict:
    """What the trainer's ``snapshot()`` saves, for a tiny model."""
    return {
        "model": {
            "conv1.weight": np.ones((2, 1, 3, 3), np.float32),
            "bn1.running_var": np.ones(2, np.float32),
            "bn1.num_batches_tracked": np.array(3),
        },
        "optimizer": {
            "state": {0: {"momentum_buffer": np.zeros((2, 1, 3, 3), np.float32)}},
            "param_groups": [{"lr": 0.1, "momentum": 0.9, "params": [0]}],
        },
        "scheduler": {"name": "StepLR", "last_epoch": 4, "base_lrs": [0.1], "last_lr": [0.1]},
        "progress": {
            "epoch": 1,
            "batch": 0,
            "loss_sum": 0.0,
            "correct": 0,
            "seen": 0,
            "seconds": 0.0,
        },
        "history": [{"epoch": 1, "train_loss": 1.5, "val_loss": float("nan"), "lr": 0.1}],
        "best_val_accuracy": -1.0,
        "config": TrainConfig().to_dict(),
        "classes": ["stripes", "dots"],
        "normalization": {"mean": [0.5], "std": [0.25]},
        "image_shape": [1, 8, 8],
    }


def write_with_metadata(path, meta_text: str) -> None:
    """A checkpoint file whose ``checkpoint.json`` entry is exactly ``meta_text``."""
    entry = np.frombuffer(meta_text.encode(), dtype=np.uint8)
    nnio.save({"model/w": np.ones(2, np.float32), "checkpoint.json": entry}, path)


def rewrite_metadata(path, edit) -> None:
    """Replace the metadata of the checkpoint at ``path`` by ``edit(metadata)``."""
    arrays = nnio.load(path)
    meta = edit(json.loads(arrays["checkpoint.json"].tobytes()))
    arrays["checkpoint.json"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    nnio.save(arrays, path)


def test_round_trip_keeps_the_structure_the_trainer_reads(tmp_path):
    checkpoint = make_checkpoint()
    save_checkpoint(tmp_path / "c.npz", checkpoint)
    loaded = load_checkpoint(tmp_path / "c.npz")
    assert set(loaded) == set(checkpoint)
    assert list(loaded["model"]) == list(checkpoint["model"])
    assert loaded["optimizer"]["state"][0]["momentum_buffer"].shape == (2, 1, 3, 3)
    assert loaded["progress"] == checkpoint["progress"]
    assert loaded["classes"] == ["stripes", "dots"] and loaded["image_shape"] == [1, 8, 8]
    assert np.isnan(loaded["history"][0]["val_loss"])
    assert list(load_weights(tmp_path / "c.npz")) == list(checkpoint["model"])


@pytest.mark.parametrize(
    ("meta_text", "cause"),
    [
        ("[1, 2]", "metadata is a list, not a dict"),
        ('{"format": "nnscratch-checkpoint", "version": 1, "content": [1]}', "content"),
        ("[" * 100_000 + "]" * 100_000, "nested deeper than"),
        ('{"a": "' + "[" * 100_000 + '"}', "not an nnscratch training checkpoint"),
        ("\xff{", "corrupted checkpoint metadata"),
    ],
    ids=["list", "content-list", "deep", "brackets-in-a-string", "not-json"],
)
def test_bad_metadata_is_one_clear_error(tmp_path, meta_text, cause):
    path = tmp_path / "bad.npz"
    write_with_metadata(path, meta_text)
    with pytest.raises(ValueError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and cause in message and "\n" not in message, message


def test_a_checkpoint_without_config_says_so(tmp_path):
    checkpoint = make_checkpoint()
    del checkpoint["config"]
    save_checkpoint(tmp_path / "c.npz", checkpoint)
    with pytest.raises(ValueError, match=r"c\.npz: not a training checkpoint \(no config\)"):
        load_checkpoint(tmp_path / "c.npz")


@pytest.mark.parametrize(
    ("field", "value", "cause"),
    [
        ("config", [1], "'config' must be a dict"),
        ("progress", {"epoch": "1", "batch": 0}, "'progress'"),
        ("progress", {"batch": 0}, "'progress'"),
        ("history", [1], "'history'"),
        ("classes", ["a", 2], "'classes'"),
        ("normalization", {"mean": [0.5]}, "'normalization'"),
        ("image_shape", [1, 0, 8], "'image_shape'"),
        ("image_shape", [1, 8], "'image_shape'"),
        ("best_val_accuracy", "high", "'best_val_accuracy'"),
        ("optimizer", [], "'optimizer'"),
        ("scheduler", 3, "'scheduler'"),
    ],
)
def test_metadata_fields_of_the_wrong_type_are_refused(tmp_path, field, value, cause):
    checkpoint = make_checkpoint()
    checkpoint[field] = value
    save_checkpoint(tmp_path / "c.npz", checkpoint)
    with pytest.raises(ValueError, match=r"c\.npz: ") as info:
        load_checkpoint(tmp_path / "c.npz")
    assert cause in str(info.value)


def test_malformed_packed_dict_is_refused(tmp_path):
    def break_a_pair(meta):
        meta["content"]["__dict__"][0] = [1]
        return meta

    save_checkpoint(tmp_path / "c.npz", make_checkpoint())
    rewrite_metadata(tmp_path / "c.npz", break_a_pair)
    with pytest.raises(ValueError, match=r"c\.npz: corrupted checkpoint"):
        load_checkpoint(tmp_path / "c.npz")


@pytest.mark.parametrize(
    ("weight", "cause"),
    [
        (np.array([1.0, np.nan], np.float32), "not finite"),
        (np.array([np.inf], np.float32), "not finite"),
        (np.array([1 + 2j]), "complex128"),
        (np.array([1, 2]), "int64"),
        (np.array([True]), "bool"),
    ],
    ids=["nan", "inf", "complex", "int", "bool"],
)
def test_bad_model_weights_are_refused_naming_the_key(tmp_path, weight, cause):
    checkpoint = make_checkpoint()
    checkpoint["model"]["fc.weight"] = weight
    save_checkpoint(tmp_path / "c.npz", checkpoint)
    for reader in (load_checkpoint, load_weights):
        with pytest.raises(ValueError, match=r"c\.npz: .*'fc\.weight'") as info:
            reader(tmp_path / "c.npz")
        assert cause in str(info.value)


def test_state_dict_files_get_the_same_weight_checks(tmp_path):
    nnio.save({"fc.bias": np.array([np.nan], np.float32)}, tmp_path / "w.npz")
    with pytest.raises(ValueError, match=r"w\.npz: .*'fc\.bias'.*not finite"):
        load_weights(tmp_path / "w.npz")

"""Training checkpoints: everything needed to continue a run exactly, in one ``.npz`` file.

A checkpoint is a nested dict (model state, optimizer and scheduler state, progress,
history, configuration). Arrays are stored as ``.npz`` entries: the model's under
``model/<torchvision key>`` (so ``np.load`` alone can read the weights), the rest under
``arrays/<n>``. Everything else goes into one JSON document stored as the bytes of the
entry ``checkpoint.json``. The file is written atomically (:func:`nnscratch.io.save`).

A checkpoint may come from elsewhere, so reading one validates it: the JSON's nesting
depth is bounded before it is parsed, its fields must have the types the trainer saves,
and the model weights must be finite floats. Anything else is one ``ValueError`` that
names the file and the problem.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from nnscratch import io

FORMAT = "nnscratch-checkpoint"
VERSION = 1
_META_KEY = "checkpoint.json"
_MODEL_PREFIX = "model/"
# The trainer's metadata nests about ten levels; json.loads recurses once per level.
_MAX_JSON_DEPTH = 64
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


def save_checkpoint(path: str | os.PathLike, checkpoint: dict[str, Any]) -> None:
    """Write ``checkpoint`` (a dict with a ``"model"`` state dict) to ``path`` atomically."""
    arrays: dict[str, np.ndarray] = {}
    for key, value in checkpoint["model"].items():
        arrays[_MODEL_PREFIX + key] = np.asarray(value)

    def pack(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            key = f"arrays/{len(arrays)}"
            arrays[key] = value
            return {"__array__": key}
        if isinstance(value, dict):
            return {"__dict__": [[pack(k), pack(v)] for k, v in value.items()]}
        if isinstance(value, (list, tuple)):
            return [pack(v) for v in value]
        if isinstance(value, np.generic):
            return value.item()
        return value

    rest = {k: v for k, v in checkpoint.items() if k != "model"}
    meta = {"format": FORMAT, "version": VERSION, "content": pack(rest)}
    arrays[_META_KEY] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    io.save(arrays, path)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the file
    if it is truncated, corrupted, an ``.npz`` that is not a training checkpoint, or if
    its metadata or model weights are not what :func:`save_checkpoint` writes.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return _checkpoint_from_arrays(io.load(path), path)


def _checkpoint_from_arrays(arrays: dict[str, np.ndarray], path: Path) -> dict[str, Any]:
    """The checkpoint dict stored in the ``.npz`` entries ``arrays``, validated."""
    if _META_KEY not in arrays:
        raise ValueError(f"{path}: not an nnscratch training checkpoint (no {_META_KEY} entry)")
    meta = _read_metadata(arrays[_META_KEY].tobytes(), path)

    def corrupted(problem: str) -> ValueError:
        return ValueError(f"{path}: corrupted checkpoint ({problem})")

    def unpack(value: Any) -> Any:
        if isinstance(value, dict) and "__array__" in value:
            if value["__array__"] not in arrays:
                raise corrupted(f"missing {value['__array__']}")
            return arrays[value["__array__"]]
        if isinstance(value, dict) and "__dict__" in value:
            pairs = value["__dict__"]
            if not isinstance(pairs, list) or any(
                not isinstance(pair, list) or len(pair) != 2 for pair in pairs
            ):
                raise corrupted("a packed dict is not a list of [key, value] pairs")
            try:
                return {_hashable(unpack(k)): unpack(v) for k, v in pairs}
            except TypeError:
                raise corrupted("a dict key is not hashable") from None
        if isinstance(value, list):
            return [unpack(v) for v in value]
        return value

    checkpoint = unpack(meta["content"])
    if not isinstance(checkpoint, dict):
        raise corrupted(f"its content is a {type(checkpoint).__name__}, not a dict")
    _check_fields(checkpoint, path)
    checkpoint["model"] = {
        k[len(_MODEL_PREFIX) :]: v for k, v in arrays.items() if k.startswith(_MODEL_PREFIX)
    }
    _check_weights(checkpoint["model"], path)
    return checkpoint


def _read_metadata(raw: bytes, path: Path) -> dict[str, Any]:
    """Parse the ``checkpoint.json`` entry, refusing deep nesting before json recurses."""
    try:
        text = raw.decode()
        if _json_depth(raw) > _MAX_JSON_DEPTH:
            raise ValueError(f"nested deeper than {_MAX_JSON_DEPTH} levels")
        meta = json.loads(text)
    except (UnicodeDecodeError, ValueError) as error:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"{path}: corrupted checkpoint metadata ({error})") from None
    if not isinstance(meta, dict):
        raise ValueError(
            f"{path}: corrupted checkpoint metadata (metadata is a {type(meta).__name__}, "
            "not a dict)"
        )
    if meta.get("format") != FORMAT or "content" not in meta:
        raise ValueError(f"{path}: not an nnscratch training checkpoint")
    return meta


def _json_depth(text: bytes) -> int:
    """The deepest ``[``/``{`` nesting in a JSON document, counted outside its strings."""
    codes = np.frombuffer(_JSON_STRING.sub(b'""', text), dtype=np.uint8)
    steps = np.isin(codes, list(b"[{")).astype(np.int64) - np.isin(codes, list(b"]}"))
    return int(np.cumsum(steps).max(initial=0))


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_list_of(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, list) and all(map(check, value))


# What the trainer's snapshot() stores besides the model: field -> (check, description).
_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "config": (lambda v: isinstance(v, dict), "a dict"),
    "progress": (
        lambda v: (
            isinstance(v, dict)
            and all(map(_is_number, v.values()))
            and _is_count(v.get("epoch"))
            and _is_count(v.get("batch"))
        ),
        "a dict of numbers with 'epoch' and 'batch' counts",
    ),
    "history": (_is_list_of(lambda row: isinstance(row, dict)), "a list of dicts"),
    "best_val_accuracy": (_is_number, "a number"),
    "classes": (_is_list_of(lambda name: isinstance(name, str)), "a list of str"),
    "normalization": (
        lambda v: (
            isinstance(v, dict) and all(_is_list_of(_is_number)(v.get(k)) for k in ("mean", "std"))
        ),
        "a dict with 'mean' and 'std' lists of numbers",
    ),
    "image_shape": (
        lambda v: _is_list_of(_is_count)(v) and len(v) == 3 and 0 not in v,
        "a list of 3 positive ints",
    ),
    "optimizer": (lambda v: isinstance(v, dict), "a dict"),
    "scheduler": (lambda v: v is None or isinstance(v, dict), "a dict or null"),
}


def _check_fields(checkpoint: dict[str, Any], path: Path) -> None:
    """Refuse metadata whose fields lack the types the trainer and ``restore_run`` read."""
    if "config" not in checkpoint:
        raise ValueError(f"{path}: not a training checkpoint (no config)")
    for field, (check, description) in _FIELDS.items():
        if field not in checkpoint:
            raise ValueError(f"{path}: corrupted checkpoint metadata (no {field!r})")
        if not check(checkpoint[field]):
            raise ValueError(
                f"{path}: corrupted checkpoint metadata ({field!r} must be {description}, "
                f"got {str(checkpoint[field])[:80]})"
            )


def _check_weights(state: dict[Any, Any], path: Path) -> None:
    """Model weights must be finite float arrays (integer only for ``num_batches_tracked``)."""
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, np.ndarray):
            raise ValueError(f"{path}: weight {key!r} is not a named array")
        if key.endswith("num_batches_tracked") and value.dtype.kind in "iu":
            continue
        if value.dtype.kind != "f":
            raise ValueError(f"{path}: weight {key!r} has dtype {value.dtype}, expected float")
        if not np.isfinite(value).all():
            raise ValueError(f"{path}: weight {key!r} is not finite (NaN or infinity)")


def is_checkpoint(path: str | os.PathLike) -> bool:
    """True for an ``.npz`` training checkpoint, False for a bare state dict (reads the index)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return f"{_META_KEY}.npy" in archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def load_weights(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Model weights from a training checkpoint, a state-dict ``.npz``, a PyTorch ``.pth`` or a
    ``.safetensors`` file.

    The weights must be finite float arrays (integer ``num_batches_tracked`` aside).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix in (".pth", ".pt"):
        state = io.load_torch_checkpoint(path)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise ValueError(f"{path}: expected a state dict in this PyTorch file")
        state = dict(state)
    elif path.suffix == ".safetensors":
        state = io.load_safetensors(path)
    else:
        arrays = io.load(path)
        if _META_KEY in arrays:
            return _checkpoint_from_arrays(arrays, path)["model"]
        state = arrays
    _check_weights(state, path)
    return state

"""Training checkpoints: everything needed to continue a run exactly, in one ``.npz`` file.

A checkpoint is a nested dict (model state, optimizer and scheduler state, progress,
history, configuration). Arrays are stored as ``.npz`` entries: the model's under
``model/<torchvision key>`` (so ``np.load`` alone can read the weights), the rest under
``arrays/<n>``. Everything else goes into one JSON document stored as the bytes of the
entry ``checkpoint.json``. The file is written atomically (:func:`nnscratch.io.save`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from nnscratch import io

FORMAT = "nnscratch-checkpoint"
VERSION = 1
_META_KEY = "checkpoint.json"
_MODEL_PREFIX = "model/"


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
    if it is truncated, corrupted, or an ``.npz`` that is not a training checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    arrays = io.load(path)
    if _META_KEY not in arrays:
        raise ValueError(f"{path}: not an nnscratch training checkpoint (no {_META_KEY} entry)")
    try:
        meta = json.loads(arrays[_META_KEY].tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: corrupted checkpoint metadata ({error})") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not an nnscratch training checkpoint")

    def unpack(value: Any) -> Any:
        if isinstance(value, dict) and "__array__" in value:
            try:
                return arrays[value["__array__"]]
            except KeyError:
                raise ValueError(
                    f"{path}: corrupted checkpoint (missing {value['__array__']})"
                ) from None
        if isinstance(value, dict) and "__dict__" in value:
            return {_hashable(unpack(k)): unpack(v) for k, v in value["__dict__"]}
        if isinstance(value, list):
            return [unpack(v) for v in value]
        return value

    checkpoint = unpack(meta["content"])
    checkpoint["model"] = {
        k[len(_MODEL_PREFIX) :]: v for k, v in arrays.items() if k.startswith(_MODEL_PREFIX)
    }
    return checkpoint


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


def load_weights(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Model weights from a training checkpoint, a state-dict ``.npz`` or a PyTorch ``.pth``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix in (".pth", ".pt"):
        state = io.load_torch_checkpoint(path)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise ValueError(f"{path}: expected a state dict in this PyTorch file")
        return dict(state)
    arrays = io.load(path)
    if _META_KEY in arrays:
        return load_checkpoint(path)["model"]
    return arrays

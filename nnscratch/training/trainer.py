"""The training loop: epochs of SGD steps, validation, metrics, checkpoints, resume.

Each epoch trains on shuffled, augmented batches, then measures the validation split.
After every epoch ``last.npz`` (everything needed to continue) is written atomically,
and ``best.npz`` whenever validation accuracy improves. Ctrl-C finishes the current
step, saves ``last.npz`` mid-epoch, and exits; ``resume`` continues from it and ends
with the same weights as a run that was never interrupted. At the end the best
validation model is measured on the test split, and the curves and confusion matrix
are drawn.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from nnscratch import data, plot
from nnscratch.nn.loss import CrossEntropyLoss
from nnscratch.training import builders
from nnscratch.training.checkpoint import load_checkpoint, save_checkpoint
from nnscratch.training.config import TrainConfig
from nnscratch.training.evaluation import evaluate
from nnscratch.training.metrics import MetricsLog, confusion_matrix, per_class_accuracy
from nnscratch.training.run_dir import (
    check_output_dir,
    create_output_dir,
    lock_run_dir,
    resolve_resume,
)
from nnscratch.utils.atomic import atomic_write


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the run after saving a checkpoint it can resume from."""


@contextlib.contextmanager
def _stop_on_ctrl_c() -> Iterator[threading.Event]:
    """The first Ctrl-C sets the event (the loop stops after the step); a second one aborts."""
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return

    def handler(signum, frame):
        if requested.is_set():
            raise KeyboardInterrupt
        requested.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield requested
    finally:
        signal.signal(signal.SIGINT, previous)


def train(
    config: TrainConfig | None = None,
    *,
    resume: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run (or, with ``resume`` = a run directory or its ``last.npz``, continue) a training run.

    A new run writes into ``config.out_dir`` (which must not hold a run yet) or, if that
    is ``None``, into a new ``runs/train-<date>-<time>``; a resumed run writes into the
    directory it is resumed from, with its saved config; ``overrides`` may change the
    options that do not alter its numbers (``data_dir``, ``download``, ``prefetch``).
    Returns the run summary (also ``summary.json``).
    """
    checkpoint, run_dir = None, None
    if resume is not None:
        run_dir, path = resolve_resume(resume)
        checkpoint = load_checkpoint(path)
        config = dataclasses.replace(
            TrainConfig.from_dict(checkpoint["config"]), **(overrides or {}), out_dir=str(run_dir)
        )
        done = checkpoint["progress"]["epoch"] >= config.epochs
        if done and (run_dir / "summary.json").is_file():
            raise ValueError(f"{run_dir} finished all {config.epochs} epochs; nothing to resume")
        log(f"resuming {path} at epoch {checkpoint['progress']['epoch'] + 1}, "
            f"batch {checkpoint['progress']['batch']}")  # fmt: skip
    config = config or TrainConfig()
    if run_dir is None and config.out_dir is not None:
        check_output_dir(config.out_dir)  # before minutes of data loading
    builders.check_training_fits(config)
    splits = builders.build_data(config)
    image_shape = splits.train.images.shape[1:]
    build_config = dataclasses.replace(config, init_from=None) if checkpoint else config
    model = builders.build_model(build_config, splits.train.num_classes, image_shape[0])
    optimizer = builders.build_optimizer(config, model)
    loader = data.BatchLoader(
        splits.train, config.batch_size, shuffle=True, seed=config.seed, drop_last=True,
        transform=builders.train_transform(config, splits.mean, splits.std), prefetch=config.prefetch,
    )  # fmt: skip
    schedule = builders.build_schedule(config, optimizer, len(loader))
    eval_transform = builders.eval_transform(splits.mean, splits.std)
    criterion = CrossEntropyLoss(config.label_smoothing)

    progress_state = _fresh_progress(epoch=0)
    history: list[dict[str, Any]] = []
    best_val = -1.0
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        if schedule is not None:
            schedule.load_state_dict(checkpoint["scheduler"])
        progress_state = dict(checkpoint["progress"])
        history = list(checkpoint["history"])
        best_val = float(checkpoint["best_val_accuracy"])
    else:
        log(f"{config.model} ({model.num_parameters():,} parameters) on {config.dataset}: "
            f"{len(splits.train)} train / {len(splits.val) if splits.val else 0} val / "
            f"{len(splits.test)} test images {'x'.join(map(str, image_shape))}, "
            f"{config.epochs} epochs of {len(loader)} batches of {config.batch_size}")  # fmt: skip
    # The directory is created only once data, model and loader are in place.
    out = run_dir if run_dir is not None else create_output_dir(config.out_dir)
    with lock_run_dir(out), _stop_on_ctrl_c() as stop_requested:
        if run_dir is None:
            check_output_dir(out)  # again, under the lock: no other run took it meanwhile
            config = dataclasses.replace(config, out_dir=str(out))
        with atomic_write(out / "config.json", "w") as f:
            json.dump(config.to_dict(), f, indent=1)
        metrics = MetricsLog(out, history)  # metrics.csv appears once Ctrl-C is handled

        def snapshot() -> dict[str, Any]:
            return {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": schedule.state_dict() if schedule is not None else None,
                "progress": dict(progress_state),
                "history": metrics.rows,
                "best_val_accuracy": best_val,
                "config": config.to_dict(),
                "classes": splits.classes,
                "normalization": {"mean": splits.mean.tolist(), "std": splits.std.tolist()},
                "image_shape": list(image_shape),
            }

        def stop_if_requested(where: str) -> None:
            if stop_requested.is_set():
                log(f"interrupted {where}: saved {out / 'last.npz'}; continue with "
                    f"`nnscratch train --resume {out}`")  # fmt: skip
                raise TrainingInterrupted

        for epoch in range(progress_state["epoch"], config.epochs):
            loader.set_epoch(epoch)
            start_batch = progress_state["batch"]
            bar = tqdm(total=len(loader), initial=start_batch, desc=f"epoch {epoch + 1}/{config.epochs}",
                       unit="batch", disable=not progress, dynamic_ncols=True, mininterval=1.0)  # fmt: skip
            epoch_start = time.perf_counter() - progress_state["seconds"]
            for i, (x, y) in enumerate(loader):
                if i < start_batch:
                    continue
                optimizer.zero_grad()
                logits = model(x)
                loss = criterion(logits, y)
                if not math.isfinite(loss):
                    bar.close()
                    raise TrainingDiverged(
                        f"loss became {loss} at epoch {epoch + 1}, batch {i + 1} "
                        f"(lr {optimizer.param_groups[0]['lr']:.3g}); "
                        f"{_last_good(out)}; try a lower --lr or more --warmup-epochs"
                    )
                model.backward(criterion.backward())
                optimizer.step()
                if schedule is not None:
                    schedule.step()
                progress_state["batch"] = i + 1
                progress_state["loss_sum"] += loss * len(y)
                progress_state["correct"] += int(np.sum(logits.argmax(axis=1) == y))
                progress_state["seen"] += len(y)
                progress_state["seconds"] = time.perf_counter() - epoch_start
                bar.update(1)
                bar.set_postfix(
                    loss=f"{progress_state['loss_sum'] / progress_state['seen']:.3f}",
                    acc=f"{progress_state['correct'] / progress_state['seen']:.3f}",
                    img_s=f"{progress_state['seen'] / progress_state['seconds']:.0f}",
                    refresh=False,
                )
                if stop_requested.is_set():
                    bar.close()
                    _save(out / "last.npz", snapshot())
                    stop_if_requested(f"in epoch {epoch + 1}")
            bar.close()
            train_seconds = progress_state["seconds"]
            val = evaluate(model, splits.val, eval_transform) if splits.val else None
            row = {
                "epoch": epoch + 1,
                "train_loss": progress_state["loss_sum"] / progress_state["seen"],
                "train_accuracy": progress_state["correct"] / progress_state["seen"],
                "val_loss": val.loss if val else float("nan"),
                "val_accuracy": val.accuracy if val else float("nan"),
                "lr": optimizer.param_groups[0]["lr"],
                "seconds": train_seconds,
                "images_per_second": progress_state["seen"] / train_seconds,
            }
            if val is not None and not math.isfinite(val.loss):
                raise TrainingDiverged(
                    f"validation loss became {val.loss} after epoch {epoch + 1}; "
                    f"{_last_good(out)}; try a lower --lr"
                )
            metrics.append(row)
            log(f"epoch {epoch + 1}/{config.epochs}: train loss {row['train_loss']:.4f} "
                f"acc {row['train_accuracy']:.2%} | val loss {row['val_loss']:.4f} "
                f"acc {row['val_accuracy']:.2%} | {train_seconds:.0f} s, "
                f"{row['images_per_second']:.0f} img/s")  # fmt: skip
            improved = val is None or val.accuracy > best_val
            if val is not None:
                best_val = max(best_val, val.accuracy)
            progress_state = _fresh_progress(epoch=epoch + 1)
            state = snapshot()
            _save(out / "last.npz", state)
            if improved:
                _save(out / "best.npz", state)
            stop_if_requested(f"after epoch {epoch + 1}")  # Ctrl-C during validation

        return _finish(out, model, splits, eval_transform, metrics.rows, best_val, log,
                       lambda: stop_if_requested("before the final test"))  # fmt: skip


def _fresh_progress(epoch: int) -> dict[str, Any]:
    """Progress at the start of ``epoch`` (0-based): no batch seen yet."""
    return {"epoch": epoch, "batch": 0, "loss_sum": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}


def _last_good(out: Path) -> str:
    """Where the last good checkpoint is, for a message about a diverged run."""
    if (out / "last.npz").is_file():
        return f"the last good checkpoint is {out / 'last.npz'}"
    return "no checkpoint was saved yet (it diverged in the first epoch)"


def _save(path: Path, state: dict[str, Any]) -> None:
    """Write a checkpoint; a failed write (full disk) leaves the previous one intact and says so."""
    try:
        save_checkpoint(path, state)
    except OSError as error:
        kept = f"the previous {path.name} is intact" if path.exists() else "nothing was written"
        raise OSError(
            error.errno, f"cannot write {path} ({error.strerror or error}); {kept}"
        ) from error


def _finish(out, model, splits, eval_transform, history, best_val, log, stop_if_requested):
    """Test the best validation model; write plots and ``summary.json``."""
    model.load_state_dict(load_checkpoint(out / "best.npz")["model"])
    test = evaluate(model, splits.test, eval_transform)
    stop_if_requested()
    counts = confusion_matrix(test.labels, test.predictions, len(splits.classes))
    per_class = per_class_accuracy(counts)
    plot.history_figure(history, out / "curves.png")
    plot.confusion_figure(counts, splits.classes, out / "confusion.png",
                          title=f"test accuracy {test.accuracy:.2%}")  # fmt: skip
    summary = {
        "test_accuracy": test.accuracy,
        "test_loss": test.loss,
        "best_val_accuracy": best_val,
        "per_class_accuracy": dict(zip(splits.classes, map(float, per_class))),
        "epochs": len(history),
        "train_seconds": float(sum(row["seconds"] for row in history)),
        "output": {name: str(out / name) for name in
                   ("best.npz", "last.npz", "metrics.csv", "metrics.json", "curves.png", "confusion.png")},
    }  # fmt: skip
    with atomic_write(out / "summary.json", "w") as f:
        json.dump(summary, f, indent=1)
    log(f"test accuracy {test.accuracy:.2%} (best validation {best_val:.2%}); "
        f"wrote {out}/: best.npz, last.npz, metrics.csv, curves.png, confusion.png")  # fmt: skip
    return summary

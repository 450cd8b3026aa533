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
from nnscratch.models.classifier import ImageClassifier
from nnscratch.nn.loss import CrossEntropyLoss
from nnscratch.optim import LRScheduler, Optimizer
from nnscratch.training import builders
from nnscratch.training.checkpoint import load_checkpoint, save_checkpoint
from nnscratch.training.config import TrainConfig
from nnscratch.training.evaluation import Evaluation, evaluate
from nnscratch.training.metrics import MetricsLog, confusion_matrix, per_class_accuracy
from nnscratch.training.run_dir import (
    check_output_dir,
    create_output_dir,
    lock_run_dir,
    resolve_resume,
)
from nnscratch.training.step import train_step
from nnscratch.utils.atomic import atomic_write
from nnscratch.utils.words import count

# Everything a finished run leaves in its directory (summary.json lists them all).
RUN_OUTPUTS = (
    "config.json",
    "metrics.csv",
    "metrics.json",
    "last.npz",
    "best.npz",
    "curves.png",
    "confusion.png",
    "summary.json",
)


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
        config, run_dir, checkpoint = _resume_point(resume, overrides, log)
    config = config or TrainConfig()
    if run_dir is None and config.out_dir is not None:
        check_output_dir(config.out_dir)  # before minutes of data loading
    run = _build_run(config, checkpoint, log)
    # The directory is created only once data, model and loader are in place.
    out = run_dir if run_dir is not None else create_output_dir(config.out_dir)
    with lock_run_dir(out), _stop_on_ctrl_c() as stop_requested:
        run.open(out, stop_requested, new=run_dir is None)
        for epoch in range(run.progress["epoch"], run.config.epochs):
            _train_epoch(run, epoch, show_progress=progress, log=log)
            row, val = _validate(run, epoch)
            _record_epoch(run, epoch, row, val, log)
            run.stop_if_requested(f"after epoch {epoch + 1}", log)  # Ctrl-C during validation
        return _finish(run, log)


@dataclasses.dataclass
class _Run:
    """One training run: its pieces, how far it got, and (once opened) its directory.

    ``progress`` is where the run stands inside an epoch (:func:`_fresh_progress`);
    ``history`` holds the epoch rows restored from a checkpoint until :meth:`open`
    hands them to ``metrics``, which keeps every row from then on.
    """

    config: TrainConfig
    splits: builders.DataSplits
    model: ImageClassifier
    optimizer: Optimizer
    schedule: LRScheduler | None
    loader: data.BatchLoader
    eval_transform: data.Pipeline
    criterion: CrossEntropyLoss
    progress: dict[str, Any] = dataclasses.field(default_factory=lambda: _fresh_progress(epoch=0))
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    best_val: float = -1.0
    out: Path | None = None  # set by open()
    metrics: MetricsLog | None = None  # set by open()
    stop_requested: threading.Event | None = None  # set by open()

    @property
    def image_shape(self) -> tuple[int, ...]:
        return self.splits.train.images.shape[1:]

    def describe(self) -> str:
        """One line on the model, the data and the budget of a new run."""
        config, splits = self.config, self.splits
        return (
            f"{config.model} ({self.model.num_parameters():,} parameters) on {config.dataset}: "
            f"{len(splits.train)} train / {len(splits.val) if splits.val else 0} val / "
            f"{len(splits.test)} test images {'x'.join(map(str, self.image_shape))}, "
            f"{count(config.epochs, 'epoch')} of {count(len(self.loader), 'batch', 'batches')} "
            f"of {config.batch_size}"
        )

    def restore(self, checkpoint: dict[str, Any]) -> None:
        """Continue from ``checkpoint``: weights, optimizer, schedule, progress, history, best."""
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        if self.schedule is not None:
            self.schedule.load_state_dict(checkpoint["scheduler"])
        self.progress = dict(checkpoint["progress"])
        self.history = list(checkpoint["history"])
        self.best_val = float(checkpoint["best_val_accuracy"])

    def open(self, out: Path, stop_requested: threading.Event, *, new: bool) -> None:
        """Take the (locked) directory ``out``: write ``config.json`` and the metrics files."""
        if new:
            check_output_dir(out)  # again, under the lock: no other run took it meanwhile
            self.config = dataclasses.replace(self.config, out_dir=str(out))
        with atomic_write(out / "config.json", "w") as f:
            json.dump(self.config.to_dict(), f, indent=1)
        self.out, self.stop_requested = out, stop_requested
        self.metrics = MetricsLog(out, self.history)  # metrics.csv appears once Ctrl-C is handled

    def snapshot(self) -> dict[str, Any]:
        """Everything a checkpoint holds: enough to continue the run or to use its model."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict() if self.schedule is not None else None,
            "progress": dict(self.progress),
            "history": self.metrics.rows,
            "best_val_accuracy": self.best_val,
            "config": self.config.to_dict(),
            "classes": self.splits.classes,
            "normalization": {"mean": self.splits.mean.tolist(), "std": self.splits.std.tolist()},
            "image_shape": list(self.image_shape),
        }

    def stop_if_requested(self, where: str, log: Callable[[str], None]) -> None:
        """Raise :class:`TrainingInterrupted` if Ctrl-C was pressed (``last.npz`` is saved)."""
        if self.stop_requested.is_set():
            log(
                f"interrupted {where}: saved {self.out / 'last.npz'}; continue with "
                f"`nnscratch train --resume {self.out}`"
            )
            raise TrainingInterrupted


def _resume_point(
    resume: str | Path, overrides: dict[str, Any] | None, log: Callable[[str], None]
) -> tuple[TrainConfig, Path, dict[str, Any]]:
    """The saved config (with ``overrides``), the directory and the last checkpoint of a run."""
    run_dir, path = resolve_resume(resume)
    checkpoint = load_checkpoint(path)
    config = dataclasses.replace(
        TrainConfig.from_dict(checkpoint["config"]), **(overrides or {}), out_dir=str(run_dir)
    )
    done = checkpoint["progress"]["epoch"] >= config.epochs
    if done and (run_dir / "summary.json").is_file():
        done = f"all {config.epochs} epochs" if config.epochs > 1 else "its 1 epoch"
        raise ValueError(f"{run_dir} finished {done}; nothing to resume")
    log(
        f"resuming {path} at epoch {checkpoint['progress']['epoch'] + 1}, "
        f"batch {checkpoint['progress']['batch']}"
    )
    return config, run_dir, checkpoint


def _build_run(
    config: TrainConfig, checkpoint: dict[str, Any] | None, log: Callable[[str], None]
) -> _Run:
    """The data, model, optimizer, loader and schedule of ``config``, restored from ``checkpoint``."""
    builders.check_training_fits(config)
    splits = builders.build_data(config)
    sources = dict.fromkeys(s.source for s in (splits.train, splits.test) if s.source)
    if sources:  # which copy of a data set was used (the cache, a system copy, --data-dir)
        log(f"data read from {', '.join(sources)}")
    build_config = dataclasses.replace(config, init_from=None) if checkpoint else config
    in_channels = splits.train.images.shape[1]
    model = builders.build_model(build_config, splits.train.num_classes, in_channels)
    optimizer = builders.build_optimizer(config, model)
    loader = builders.build_train_loader(config, splits)
    run = _Run(
        config,
        splits,
        model,
        optimizer,
        schedule=builders.build_schedule(config, optimizer, len(loader)),
        loader=loader,
        eval_transform=builders.eval_transform(splits.mean, splits.std),
        criterion=CrossEntropyLoss(config.label_smoothing),
    )
    if checkpoint is not None:
        run.restore(checkpoint)
    else:
        log(run.describe())
    return run


def _train_epoch(run: _Run, epoch: int, *, show_progress: bool, log: Callable[[str], None]) -> None:
    """The training batches of ``epoch`` from where the run stands; Ctrl-C saves ``last.npz``."""
    run.loader.set_epoch(epoch)
    progress = run.progress
    start_batch = progress["batch"]
    bar = tqdm(
        total=len(run.loader),
        initial=start_batch,
        desc=f"epoch {epoch + 1}/{run.config.epochs}",
        unit="batch",
        disable=not show_progress,
        dynamic_ncols=True,
        mininterval=1.0,
    )
    epoch_start = time.perf_counter() - progress["seconds"]
    for i, (x, y) in enumerate(run.loader):
        if i < start_batch:
            continue
        lr = run.optimizer.param_groups[0]["lr"]  # the rate this step uses; the schedule moves it
        loss, logits = train_step(run.model, run.criterion, run.optimizer, run.schedule, x, y)
        if not math.isfinite(loss):
            bar.close()
            raise TrainingDiverged(
                f"loss became {loss} at epoch {epoch + 1}, batch {i + 1} "
                f"(lr {run.optimizer.param_groups[0]['lr']:.3g}); "
                f"{_last_good(run.out)}; try a lower --lr or more --warmup-epochs"
            )
        progress["batch"] = i + 1
        progress["lr"] = float(lr)
        progress["loss_sum"] += loss * len(y)
        progress["correct"] += int(np.sum(logits.argmax(axis=1) == y))
        progress["seen"] += len(y)
        progress["seconds"] = time.perf_counter() - epoch_start
        bar.update(1)
        bar.set_postfix(
            loss=f"{progress['loss_sum'] / progress['seen']:.3f}",
            acc=f"{progress['correct'] / progress['seen']:.3f}",
            img_s=f"{progress['seen'] / progress['seconds']:.0f}",
            refresh=False,
        )
        if run.stop_requested.is_set():
            bar.close()
            _save(run.out / "last.npz", run.snapshot())
            run.stop_if_requested(f"in epoch {epoch + 1}", log)
    bar.close()


def _validate(run: _Run, epoch: int) -> tuple[dict[str, Any], Evaluation | None]:
    """The metrics row of the epoch just trained, with the validation split measured."""
    progress = run.progress
    train_seconds = progress["seconds"]
    val = evaluate(run.model, run.splits.val, run.eval_transform) if run.splits.val else None
    row = {
        "epoch": epoch + 1,
        "train_loss": progress["loss_sum"] / progress["seen"],
        "train_accuracy": progress["correct"] / progress["seen"],
        "val_loss": val.loss if val else float("nan"),
        "val_accuracy": val.accuracy if val else float("nan"),
        # The rate of the epoch's last step, not the one after it (0 at the end of a cosine).
        "lr": progress.get("lr", run.optimizer.param_groups[0]["lr"]),
        "seconds": train_seconds,
        "images_per_second": progress["seen"] / train_seconds,
    }
    if val is not None and not math.isfinite(val.loss):
        raise TrainingDiverged(
            f"validation loss became {val.loss} after epoch {epoch + 1}; "
            f"{_last_good(run.out)}; try a lower --lr"
        )
    return row, val


def _record_epoch(
    run: _Run, epoch: int, row: dict[str, Any], val: Evaluation | None, log: Callable[[str], None]
) -> None:
    """Log the row, then save ``last.npz``, and ``best.npz`` if validation accuracy improved."""
    run.metrics.append(row)
    log(
        f"epoch {epoch + 1}/{run.config.epochs}: train loss {row['train_loss']:.4f} "
        f"acc {row['train_accuracy']:.2%} | val loss {row['val_loss']:.4f} "
        f"acc {row['val_accuracy']:.2%} | {row['seconds']:.0f} s, "
        f"{row['images_per_second']:.0f} img/s"
    )
    improved = val is None or val.accuracy > run.best_val
    if val is not None:
        run.best_val = max(run.best_val, val.accuracy)
    run.progress = _fresh_progress(epoch=epoch + 1)
    state = run.snapshot()
    _save(run.out / "last.npz", state)
    if improved:
        _save(run.out / "best.npz", state)


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


def _finish(run: _Run, log: Callable[[str], None]) -> dict[str, Any]:
    """Test the best validation model; write plots and ``summary.json``."""
    out, splits, history = run.out, run.splits, run.metrics.rows
    run.model.load_state_dict(load_checkpoint(out / "best.npz")["model"])
    test = evaluate(run.model, splits.test, run.eval_transform, flip=run.config.test_flip)
    run.stop_if_requested("before the final test", log)
    counts = confusion_matrix(test.labels, test.predictions, len(splits.classes))
    per_class = per_class_accuracy(counts)
    plot.history_figure(history, out / "curves.png")
    plot.confusion_figure(
        counts, splits.classes, out / "confusion.png", title=f"test accuracy {test.accuracy:.2%}"
    )
    summary = {
        "test_accuracy": test.accuracy,
        "test_loss": test.loss,
        "best_val_accuracy": run.best_val,
        "per_class_accuracy": dict(zip(splits.classes, map(float, per_class))),
        "epochs": len(history),
        "train_seconds": float(sum(row["seconds"] for row in history)),
        "output": {name: str(out / name) for name in RUN_OUTPUTS},
    }
    with atomic_write(out / "summary.json", "w") as f:
        json.dump(summary, f, indent=1)
    log(
        f"test accuracy {test.accuracy:.2%} (best validation {run.best_val:.2%}); "
        f"wrote {out}/: {', '.join(RUN_OUTPUTS)}"
    )
    return summary

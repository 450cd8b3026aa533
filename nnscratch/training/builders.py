"""Build a run's pieces from its :class:`TrainConfig`: data, loader, model, optimizer, schedule."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnscratch import data, models, optim
from nnscratch.models.classifier import ImageClassifier
from nnscratch.training import memory
from nnscratch.training.checkpoint import load_weights
from nnscratch.training.config import TrainConfig


@dataclass
class DataSplits:
    """Train / validation / test sets and the normalisation computed from train."""

    train: data.ArrayDataset
    val: data.ArrayDataset | None
    test: data.ArrayDataset
    mean: np.ndarray  # (C,) in [0, 1] units
    std: np.ndarray  # (C,)

    @property
    def classes(self) -> list[str]:
        return self.train.classes


def build_data(config: TrainConfig) -> DataSplits:
    """Load the dataset, hold out a stratified validation split, compute channel stats."""
    kwargs = {}
    if config.dataset == "synthetic":
        kwargs.update({k: getattr(config, k) for k in ("n_train", "n_test") if getattr(config, k)})
    if config.dataset == "fashion_mnist" and config.pad_to is not None:
        kwargs["pad_to"] = config.pad_to
    if config.dataset == "folder":
        kwargs["size"] = config.image_size
    train, test = data.load(config.dataset, config.data_dir, download=config.download, **kwargs)
    val = None
    if config.val_fraction > 0:
        train, val = train.split(config.val_fraction, seed=config.seed)
    mean, std = data.channel_stats(train.images)
    return DataSplits(train, val, test, np.asarray(mean), np.asarray(std))


def train_transform(config: TrainConfig, mean, std) -> data.Pipeline:
    """uint8 (N, C, H, W) -> float32: the config's crop, flip and jitter, then normalise."""
    return data.Pipeline.from_options(
        mean, std, crop=config.crop, flip=config.flip, jitter=config.jitter
    )


def eval_transform(mean, std) -> data.Pipeline:
    """uint8 (N, C, H, W) -> float32 normalised with the training split's mean and std."""
    return data.Pipeline.from_options(mean, std)


def build_train_loader(config: TrainConfig, splits: DataSplits) -> data.BatchLoader:
    """Shuffled, augmented, normalised batches of the train split; an incomplete last batch is dropped."""
    return data.BatchLoader(
        splits.train,
        config.batch_size,
        shuffle=True,
        seed=config.seed,
        drop_last=True,
        transform=train_transform(config, splits.mean, splits.std),
        prefetch=config.prefetch,
    )


def model_kwargs(config: TrainConfig, num_classes: int, in_channels: int) -> dict[str, Any]:
    """The constructor arguments of the config's model."""
    kwargs = {
        "num_classes": num_classes,
        "in_channels": in_channels,
        "width": config.width,
        "residual": not config.plain,
        "batch_norm": config.batch_norm,
        "init_scheme": config.init,
        "seed": config.seed,
    }
    if models.supports_stem(config.model):
        kwargs["stem"] = config.stem
    return kwargs


def expected_image_shape(config: TrainConfig) -> tuple[int, int, int]:
    """(C, H, W) of the config's dataset, known before any file is read."""
    if config.dataset == "fashion_mnist":
        side = config.pad_to or 28
        return (1, side, side)
    if config.dataset == "folder":
        return (3, config.image_size, config.image_size)
    return (3, 32, 32)


def check_training_fits(config: TrainConfig) -> None:
    """Refuse, before anything large is allocated, a run that cannot fit in memory."""
    shape = expected_image_shape(config)
    sizes = memory.footprint(config.model, shape, **model_kwargs(config, 10, shape[0]))
    memory.check_fits(
        sizes.training_bytes(config.batch_size),
        f"training {config.model} at width {config.width:g} ({sizes.parameters:,} parameters) "
        f"on batches of {config.batch_size} images of {'x'.join(map(str, shape))}",
        "lower --width, --batch-size or --image-size",
    )


def build_model(config: TrainConfig, num_classes: int, in_channels: int) -> ImageClassifier:
    """The model named in the config; with ``init_from`` its weights are loaded first.

    A head of another size (ImageNet weights, another dataset) is replaced by a fresh
    one; every other tensor must match, or the error names the keys that do not.
    """
    model = models.create(config.model, **model_kwargs(config, num_classes, in_channels))
    if config.init_from:
        state = load_weights(config.init_from)
        if "fc.weight" in state and state["fc.weight"].shape != model.fc.weight.shape:
            fresh_head = {k: v for k, v in model.state_dict().items() if k.startswith("fc.")}
            state = {**{k: v for k, v in state.items() if not k.startswith("fc.")}, **fresh_head}
        model.load_state_dict(state)
    if config.freeze_backbone:
        model.freeze_backbone()
    return model


def build_optimizer(config: TrainConfig, model: ImageClassifier) -> optim.Optimizer:
    """SGD / Adam / AdamW over the trainable parameters (BN and biases undecayed by default)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if config.decay_bn_and_bias:
        params = [{"params": [p for _, p in named], "weight_decay": config.weight_decay}]
    else:
        params = optim.weight_decay_groups(named, config.weight_decay)
    lr = config.learning_rate
    if config.optimizer == "sgd":
        return optim.SGD(
            params,
            lr=lr,
            momentum=config.momentum,
            nesterov=config.nesterov,
            weight_decay=config.weight_decay,
        )
    if config.optimizer == "adam":
        return optim.Adam(params, lr=lr, weight_decay=config.weight_decay)
    return optim.AdamW(params, lr=lr, weight_decay=config.weight_decay)


def build_schedule(
    config: TrainConfig, optimizer: optim.Optimizer, steps_per_epoch: int
) -> optim.LRScheduler | None:
    """A schedule stepped once per training batch; epochs in the config become batches."""
    total = config.epochs * steps_per_epoch
    warmup = round(config.warmup_epochs * steps_per_epoch)
    rest = total - warmup
    if config.schedule == "onecycle":
        return optim.OneCycleLR(optimizer, max_lr=config.learning_rate, total_steps=total)
    if config.schedule == "cosine":
        after = optim.CosineAnnealingLR(optimizer, T_max=rest)
    elif config.schedule == "step":
        after = optim.StepLR(optimizer, config.step_size * steps_per_epoch, config.gamma)
    elif config.schedule == "multistep":
        milestones = [max(0, m * steps_per_epoch - warmup) for m in config.milestones]
        after = optim.MultiStepLR(optimizer, milestones, config.gamma)
    else:
        after = None
    if warmup > 0:
        return optim.LinearWarmup(optimizer, warmup, after=after)
    return after


def restore_run(
    checkpoint: dict, batch_size: int = 256
) -> tuple[TrainConfig, ImageClassifier, data.Pipeline]:
    """The config, the trained model (eval mode) and the evaluation transform of a checkpoint.

    The model the config describes is sized first: a config that asks for more
    parameters than the file holds weights for, or for more memory than there is to
    run batches of ``batch_size``, is refused before the model is built.
    """
    config = TrainConfig.from_dict(checkpoint["config"])
    shape = tuple(checkpoint["image_shape"])
    config = dataclasses.replace(config, init_from=None, freeze_backbone=False)
    kwargs = model_kwargs(config, len(checkpoint["classes"]), shape[0])
    sizes = memory.footprint(config.model, shape, **kwargs)
    held = sum(np.size(value) for value in checkpoint["model"].values())
    if sizes.parameters > held:
        raise ValueError(
            f"the checkpoint's config describes {config.model} at width {config.width:g} with "
            f"{sizes.parameters:,} parameters, but it holds only {held:,} values"
        )
    memory.check_fits(
        sizes.inference_bytes(batch_size),
        f"{config.model} on batches of {batch_size} images of {'x'.join(map(str, shape))}",
        "lower --batch-size",
    )
    model = build_model(config, len(checkpoint["classes"]), shape[0])
    model.load_state_dict(checkpoint["model"])
    norm = checkpoint["normalization"]
    return config, model.eval(), eval_transform(norm["mean"], norm["std"])


def dataset_split(config: TrainConfig, split: str) -> data.ArrayDataset:
    """The ``"train"``, ``"val"`` or ``"test"`` split exactly as the run saw it."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"unknown split {split!r}; choose train, val or test")
    splits = build_data(config)
    chosen = {"train": splits.train, "val": splits.val, "test": splits.test}[split]
    if chosen is None:
        raise ValueError("this run held out no validation split (val_fraction was 0)")
    return chosen

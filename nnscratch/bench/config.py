"""What ``nnscratch bench`` measures: the model, batch and image size, steps and threads."""

from __future__ import annotations

import argparse
from dataclasses import dataclass


@dataclass
class BenchConfig:
    """What to benchmark; every field is a command-line option."""

    model: str = "resnet18"
    stem: str = "cifar"
    width: float = 1.0
    num_classes: int = 10
    batch_size: int = 64
    image_size: int = 32
    in_channels: int = 3
    dtype: str = "float32"
    steps: int = 10
    warmup: int = 2
    threads: int = 0  # 0: every core
    compare_torch: bool = False
    breakdown: bool = True
    startup: bool = True
    seed: int = 0
    blas_thread_timeout: int | None = None  # OPENBLAS_THREAD_TIMEOUT for the workers

    def validate(self) -> None:
        from nnscratch import models

        if self.model not in models.names():
            raise ValueError(
                f"unknown model {self.model!r}; choose one of {', '.join(models.names())}"
            )
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"--dtype must be float32 or float64, got {self.dtype!r}")
        for name in ("batch_size", "image_size", "steps", "num_classes", "in_channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be positive")
        if self.blas_thread_timeout is not None and self.blas_thread_timeout < 1:
            raise ValueError("--blas-thread-timeout must be positive")
        if self.warmup < 0 or self.threads < 0:
            raise ValueError("--warmup and --threads must not be negative")
        if self.width <= 0:
            raise ValueError(f"--width must be positive, got {self.width}")

    def model_kwargs(self) -> dict:
        from nnscratch import models

        kwargs = {
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            "width": self.width,
            "seed": self.seed,
        }
        if models.supports_stem(self.model):
            kwargs["stem"] = self.stem
        return kwargs


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    """The config of the options that ``nnscratch.cli.bench`` parsed."""
    return BenchConfig(
        model=args.model,
        stem=args.stem,
        width=args.width,
        num_classes=args.num_classes,
        batch_size=args.batch_size,
        image_size=args.image_size,
        in_channels=args.in_channels,
        dtype=args.dtype,
        steps=args.steps,
        warmup=args.warmup,
        threads=args.threads,
        compare_torch=args.compare_torch,
        breakdown=not args.no_breakdown,
        startup=not args.no_startup,
        seed=args.seed,
        blas_thread_timeout=args.blas_thread_timeout,
    )

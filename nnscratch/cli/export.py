"""``nnscratch export RUN OUT``: a trained model's weights for PyTorch (``.pth``) or safetensors."""

from __future__ import annotations

import argparse
from pathlib import Path

from nnscratch import io
from nnscratch.cli.arguments.checks import check_new_file
from nnscratch.training import TrainConfig
from nnscratch.training.checkpoint import is_checkpoint, load_checkpoint, load_weights
from nnscratch.training.run_dir import checkpoint_in

FORMATS = {
    ".pth": io.save_torch_checkpoint,
    ".pt": io.save_torch_checkpoint,
    ".safetensors": io.save_safetensors,
}
TORCHVISION_DEPTHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")

EXAMPLES = """examples:
  nnscratch export runs/train-20261125-210000 resnet18.pth          # its best.npz
  nnscratch export runs/train-20261125-210000/last.npz model.safetensors

then, in PyTorch:  torch.load("resnet18.pth", weights_only=True)  ->  model.load_state_dict(...)
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="write a model's weights as a PyTorch .pth or a .safetensors file",
        description="Write the weights of a run (its best.npz), a training checkpoint or a "
        "state-dict .npz as a PyTorch state dict (.pth, loadable with torch.load(path, "
        "weights_only=True); torch is not needed to write it) or as .safetensors (needs the "
        "safetensors package). Keys keep torchvision's names.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("source", help="a run directory, a checkpoint, or a state-dict .npz")
    p.add_argument("out", help="the file to write: OUT.pth (or .pt) or OUT.safetensors")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix not in FORMATS:
        raise ValueError(f"{out}: the name must end in {', '.join(FORMATS)}")
    check_new_file(out, "export")
    source = checkpoint_in(args.source)
    checkpoint = load_checkpoint(source) if is_checkpoint(source) else None  # read once
    state = checkpoint["model"] if checkpoint else load_weights(source)
    FORMATS[out.suffix](state, out)
    print(f"wrote {out}: {len(state)} tensors from {source}")
    if checkpoint:
        print(how_to_build(TrainConfig.from_dict(checkpoint["config"]), state))
    return 0


def how_to_build(config: TrainConfig, state: dict) -> str:
    """One hint on the PyTorch model whose ``load_state_dict`` takes these weights."""
    num_classes = state["fc.weight"].shape[0]
    if config.model not in TORCHVISION_DEPTHS or config.width != 1:
        return (
            f"{config.model} at width {config.width:g} has no torchvision constructor: build a "
            "module with the same names and channel counts (the keys say which)"
        )
    build = f"torchvision.models.{config.model}(num_classes={num_classes})"
    if config.stem == "cifar":
        return (
            f"in PyTorch: model = {build}; model.conv1 = torch.nn.Conv2d("
            f"{state['conv1.weight'].shape[1]}, 64, 3, 1, 1, bias=False); "
            "model.maxpool = torch.nn.Identity()  (the CIFAR stem)"
        )
    return f"in PyTorch: model = {build}"

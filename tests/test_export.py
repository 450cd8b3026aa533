"""Weights out to PyTorch and safetensors, and back in: files, the command, and (where
PyTorch is installed) a torchvision-layout ResNet-18 that computes the same logits."""

import numpy as np
import pytest
from conftest import TINY_FLAGS

from nnscratch import io, models
from nnscratch.cli import main
from nnscratch.training import TrainConfig, load_checkpoint
from nnscratch.training.builders import build_model


def mixed_state() -> dict[str, np.ndarray]:
    """Every dtype the writers take, a 0-d value and a non-contiguous array."""
    rng = np.random.default_rng(0)
    return {
        "conv.weight": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "double": rng.standard_normal((2, 5)),
        "half": rng.standard_normal(3).astype(np.float16),
        "bn.num_batches_tracked": np.array(7, dtype=np.int64),
        "int32": np.arange(6, dtype=np.int32).reshape(2, 3),
        "bytes": np.arange(4, dtype=np.uint8),
        "mask": np.array([True, False]),
        "transposed": rng.standard_normal((3, 4)).astype(np.float32).T,
        "empty": np.zeros((0, 3), np.float32),
    }


def assert_same(got: dict, want: dict, ordered: bool = True) -> None:
    assert list(got) == list(want) if ordered else sorted(got) == sorted(want)
    for key, value in want.items():
        assert got[key].dtype == value.dtype and got[key].shape == value.shape, key
        np.testing.assert_array_equal(got[key], value, err_msg=key)


def test_pth_round_trip_through_our_reader(tmp_path):
    state = mixed_state()
    io.save_torch_checkpoint(state, tmp_path / "w.pth")
    as_read = {k: v.astype(np.float32) if v.dtype == np.float16 else v for k, v in state.items()}
    assert_same(dict(io.load_torch_checkpoint(tmp_path / "w.pth")), as_read)  # half -> float32


def test_safetensors_round_trip(tmp_path):
    state = mixed_state()
    io.save_safetensors(state, tmp_path / "w.safetensors")
    assert_same(io.load_safetensors(tmp_path / "w.safetensors"), state, ordered=False)


def test_writers_refuse_what_they_cannot_store(tmp_path):
    with pytest.raises(TypeError, match="'names' has dtype <U1"):
        io.save_torch_checkpoint({"names": np.array(["a"])}, tmp_path / "w.pth")
    with pytest.raises(TypeError, match="'z' has dtype complex128"):
        io.save_torch_checkpoint({"z": np.zeros(2, complex)}, tmp_path / "w.pth")
    with pytest.raises(TypeError, match=r"no PyTorch storage type for u \(uint16\)"):
        io.save_torch_checkpoint({"u": np.zeros(2, np.uint16)}, tmp_path / "w.pth")
    assert not list(tmp_path.iterdir())
    (tmp_path / "bad.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(ValueError, match=r"bad\.safetensors: not a readable safetensors file"):
        io.load_safetensors(tmp_path / "bad.safetensors")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    assert main(["train", *TINY_FLAGS, "--epochs", "1", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_export_command_and_init_from_round_trip(run_dir, tmp_path, suffix, capsys):
    out = tmp_path / f"model{suffix}"
    assert main(["export", str(run_dir), str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    exported = io.load_torch_checkpoint(out) if suffix == ".pth" else io.load_safetensors(out)
    assert_same(dict(exported), load_checkpoint(run_dir / "best.npz")["model"], ordered=False)
    config = TrainConfig(model="resnet20", width=0.25, init_from=str(out))
    model = build_model(config, 10, 3)  # --init-from takes the exported file
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, exported[key], err_msg=key)


def test_export_refuses_to_overwrite_and_unknown_suffixes(run_dir, tmp_path, capsys):
    taken = tmp_path / "taken.pth"
    taken.write_text("mine")
    assert main(["export", str(run_dir), str(taken)]) == 2
    assert "does not overwrite" in capsys.readouterr().err and taken.read_text() == "mine"
    assert main(["export", str(run_dir), str(tmp_path / "model.onnx")]) == 2
    assert "must end in .pth, .pt, .safetensors" in capsys.readouterr().err


def test_evaluate_takes_a_run_directory(run_dir, capsys):
    assert main(["evaluate", str(run_dir)]) == 0
    assert "accuracy" in capsys.readouterr().out


# ----------------------------------------------------------------------- with PyTorch
def torchvision_resnet18(torch, num_classes: int):
    """torchvision's ResNet-18 layout (names and structure) with the CIFAR stem, in torch:
    torchvision itself does not install beside this PyTorch build."""
    tnn = torch.nn

    class BasicBlock(tnn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(cout)
            self.relu = tnn.ReLU()
            self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = tnn.Sequential(
                    tnn.Conv2d(cin, cout, 1, stride, bias=False), tnn.BatchNorm2d(cout)
                )

        def forward(self, x):
            out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
            return self.relu(out + (x if self.downsample is None else self.downsample(x)))

    class ResNet18(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv2d(3, 64, 3, 1, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(64)
            self.relu = tnn.ReLU()
            self.maxpool = tnn.Identity()
            channels = 64
            for index, (planes, stride) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)]):
                blocks = [BasicBlock(channels, planes, stride), BasicBlock(planes, planes, 1)]
                setattr(self, f"layer{index + 1}", tnn.Sequential(*blocks))
                channels = planes
            self.avgpool = tnn.AdaptiveAvgPool2d(1)
            self.fc = tnn.Linear(512, num_classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
                x = layer(x)
            return self.fc(self.avgpool(x).flatten(1))

    return ResNet18()


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_exported_resnet18_gives_the_same_logits_in_torch(tmp_path, suffix):
    """Strict load into torchvision's layout; eval and train mode (batch statistics, and the
    running statistics after the step) agree with nnscratch to float32 precision."""
    torch = pytest.importorskip("torch")
    model = models.resnet18(stem="cifar", num_classes=10, seed=0)
    x = np.random.default_rng(1).standard_normal((4, 3, 32, 32)).astype(np.float32)
    model.train()
    model(x)  # running statistics away from their initial values
    path = tmp_path / f"resnet18{suffix}"
    (io.save_torch_checkpoint if suffix == ".pth" else io.save_safetensors)(model, path)
    if suffix == ".pth":
        state = torch.load(path, weights_only=True)
    else:
        from safetensors.torch import load_file

        state = load_file(str(path))
    assert state["bn1.num_batches_tracked"].dtype == torch.int64
    twin = torchvision_resnet18(torch, 10)
    twin.load_state_dict(state, strict=True)
    for mode in ("eval", "train"):
        getattr(model, mode)()
        getattr(twin, mode)()
        with torch.no_grad():
            theirs = twin(torch.from_numpy(x)).numpy()
        ours = model(x)
        scale = np.abs(ours).max()
        assert np.abs(ours - theirs).max() <= 1e-5 * scale, mode
    ours_after = model.state_dict()
    for key, value in twin.state_dict().items():
        np.testing.assert_allclose(
            value.numpy(), ours_after[key], rtol=1e-5, atol=1e-6, err_msg=key
        )


def _ddp_worker(rank: int, world: int, port: int, path: str, batch: tuple, out: str) -> None:
    """One process of a two-process DistributedDataParallel run from exported weights."""
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    model = torchvision_resnet18(torch, 10)
    model.load_state_dict(torch.load(path, weights_only=True), strict=True)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.05, momentum=0.9)
    x, y = (torch.from_numpy(a) for a in batch)
    losses = []
    for _ in range(2):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(ddp(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    if rank == 0:
        np.save(out, np.array(losses))
    dist.destroy_process_group()


def test_exported_weights_train_on_with_torch_distributed_data_parallel(tmp_path):
    """The scale-out path for real: two processes (gloo, 127.0.0.1) train two steps from
    the exported weights; the first step's loss is nnscratch's loss on that batch."""
    torch = pytest.importorskip("torch")
    import socket

    from nnscratch.nn.loss import CrossEntropyLoss

    model = models.resnet18(stem="cifar", num_classes=10, seed=0)
    io.save_torch_checkpoint(model, tmp_path / "resnet18.pth")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, 4)
    ours = CrossEntropyLoss()(model.train()(x), y)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "losses.npy"
    args = (2, port, str(tmp_path / "resnet18.pth"), (x, y), str(out))
    torch.multiprocessing.spawn(_ddp_worker, args=args, nprocs=2, join=True)
    losses = np.load(out)
    assert losses[0] == pytest.approx(ours, rel=1e-5)
    assert losses[1] < losses[0]  # the step was taken, with the gradient averaged over both

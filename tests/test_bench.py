"""nnscratch bench: the JSON it prints on a tiny model, and its command-line errors.

Only the structure is checked here: timings belong to the benchmark, not to tests.
"""

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from nnscratch import bench, cli

TINY = [
    "--model",
    "resnet20",
    "--width",
    "0.25",
    "--batch-size",
    "4",
    "--image-size",
    "8",
    "--steps",
    "1",
    "--warmup",
    "1",
    "--json",
]


@pytest.fixture(scope="module")
def tiny_result(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "out.json"
    import contextlib

    with open(out, "w") as f, contextlib.redirect_stdout(f):
        assert cli.main(["bench", *TINY]) == 0
    return json.loads(out.read_text())


def test_json_structure(tiny_result):
    r = tiny_result
    assert r["config"]["model"] == "resnet20" and r["config"]["batch_size"] == 4
    assert r["config"]["threads"] >= 1
    nn = r["nnscratch"]
    for mode in ("train", "infer"):
        assert nn[mode]["images_per_s"] > 0
        assert len(nn[mode]["step_s"]) == 1
        assert nn[mode]["step_s_median"] == pytest.approx(4 / nn[mode]["images_per_s"])
    memory = nn["memory"]
    assert memory["peak_mib"] >= memory["baseline_mib"] > 0
    assert memory["step_peak_mib"] == pytest.approx(memory["peak_mib"] - memory["baseline_mib"])
    assert "VmHWM" in r["memory_method"]
    startup = nn["startup"]
    for run in ("first_process", "second_process"):
        s = startup[run]
        assert 0 < s["start_to_imports_s"] <= s["start_to_first_step_start_s"]
        assert s["start_to_first_step_start_s"] < s["start_to_first_step_end_s"]
        assert s["first_step_s"] > 0 and s["warm_step_s"] > 0
    assert nn["setup"]["parameters"] > 0
    assert nn["setup"]["numba_threads"] >= 1
    assert "second_process_first_step_ok" in r["goals"]
    assert "torch" not in r and "ratio" not in r


def test_breakdown_sums_to_the_step(tiny_result):
    b = tiny_result["nnscratch"]["breakdown"]
    assert set(b["seconds"]) == set(bench.CATEGORIES)
    measured = sum(v for k, v in b["seconds"].items() if k != "other")
    # the timed layers never add up to more than the step that contains them
    assert measured <= b["step_s"] * 1.02
    assert sum(b["seconds"].values()) == pytest.approx(b["step_s"], rel=1e-6)
    assert sum(b["fractions"].values()) == pytest.approx(1.0, rel=1e-6)
    assert b["seconds"]["conv_forward"] > 0 and b["seconds"]["conv_backward"] > 0
    assert b["seconds"]["batch_norm"] > 0 and b["seconds"]["optimizer"] > 0


def test_every_convolution_timed_with_its_shape_and_path(tiny_result):
    b = tiny_result["nnscratch"]["breakdown"]
    convs = b["convolutions"]
    assert len(convs) == 1 + 18 + 0  # resnet20: the stem and two per block, zero-pad shortcuts
    first, wide = convs[0], convs[-1]
    assert (
        first["name"] == "conv1" and first["input"] == [3, 8, 8] and first["weight"] == [4, 3, 3, 3]
    )
    assert first["path"] == "im2col"  # 3 channels in: too narrow for Winograd
    assert wide["name"] == "layer3.2.conv2" and wide["input"] == [16, 2, 2]
    assert wide["path"] == "im2col"  # 16 channels: too narrow for Winograd to pay
    assert wide["forward_flop"] == 2 * 4 * 2 * 2 * 16 * 16 * 9
    in_layers = sum(c["forward_s"] for c in convs)
    assert in_layers == pytest.approx(b["seconds"]["conv_forward"], rel=0.05)
    assert sum(c["backward_s"] for c in convs) <= b["seconds"]["conv_backward"] * 1.05
    text = bench.format_table(tiny_result)
    assert "16x2x2" in text and "16x16x3x3" in text


def test_winograd_can_be_switched_off(monkeypatch, rng):
    from nnscratch.functional.conv import conv_geometry
    from nnscratch.functional.fast.conv import conv_path

    x, w = np.zeros((2, 128, 8, 8)), np.zeros((128, 128, 3, 3))
    g = conv_geometry("t", x, w, 1, 1)
    assert conv_path(x.shape, w.shape, g) == "winograd"
    monkeypatch.setenv("NNSCRATCH_WINOGRAD", "0")
    assert conv_path(x.shape, w.shape, g) == "im2col"
    monkeypatch.setenv("NNSCRATCH_WINOGRAD", "yes")
    with pytest.raises(ValueError, match="NNSCRATCH_WINOGRAD must be 0 or 1, got 'yes'"):
        conv_path(x.shape, w.shape, g)


def test_human_table(tiny_result):
    text = bench.format_table(tiny_result)
    assert "train images/s" in text and "conv backward" in text
    assert "memory:" in text
    assert "median of 1 step after" in text  # TINY times one step: not "1 steps"


def test_torch_twin_has_the_same_architecture():
    """The PyTorch model built from the description has the parameters of nnscratch's."""
    torch = pytest.importorskip("torch")
    from nnscratch import models

    for name, kwargs in [
        ("resnet18", {"stem": "cifar"}),
        ("resnet20", {"width": 0.5}),
        ("resnet50", {"stem": "imagenet", "width": 0.25}),
    ]:
        config = bench.BenchConfig(model=name, num_classes=7, **kwargs)
        model = models.create(name, **config.model_kwargs())
        twin = bench.torch_module(bench.architecture_spec(model))
        assert sum(p.numel() for p in twin.parameters()) == model.num_parameters()
        x = torch.zeros(2, 3, 32, 32)
        assert tuple(twin(x).shape) == (2, 7)


def test_unknown_model_exits_2_with_one_line(capsys):
    assert cli.main(["bench", "--model", "resnet7"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nnscratch bench: error: unknown model 'resnet7'")


def test_bad_numbers_exit_2(capsys):
    assert cli.main(["bench", "--batch-size", "0"]) == 2
    assert "--batch-size must be positive" in capsys.readouterr().err


def test_the_package_loads_neither_numba_nor_torch():
    """A worker imports nnscratch.bench first: the torch worker must never load numba."""
    code = (
        "import sys, nnscratch.bench, nnscratch.bench.worker; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'numba', 'torch'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_help_describes_every_option_with_one_default_style():
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if a.dest == "command")
    for action in commands.choices["bench"]._actions:
        if not action.option_strings or action.nargs == 0:  # --help and the on/off flags
            continue
        text = action.help or ""
        assert text and not text.startswith("default"), f"{action.dest}: no description"
        defaults = re.findall(r"\(default ([^)]*)\)", text)
        assert len(defaults) == 1 and text.endswith(")"), f"{action.dest}: {text!r}"
        assert "default" not in re.sub(r"\(default [^)]*\)", "", text), f"{action.dest}: {text!r}"

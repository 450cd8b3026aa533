"""The result of ``nnscratch bench`` as a human-readable table."""

from __future__ import annotations

from nnscratch.bench.nnscratch_runner import CATEGORIES
from nnscratch.utils.words import count


def format_table(result: dict) -> str:
    """The result as a human-readable table."""
    c = result["config"]
    stem = (
        f" (stem={c['stem']})"
        if c["model"].startswith("resnet")
        and c["model"] in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
        else ""
    )
    lines = [
        f"nnscratch bench: {c['model']}{stem}, width {c['width']:g}, batch {c['batch_size']}, "
        f"{c['in_channels']}x{c['image_size']}x{c['image_size']}, {c['dtype']}, "
        f"{count(c['threads'], 'thread')}, median of {count(c['steps'], 'step')} "
        f"after {c['warmup']} warm-up",
        f"cpu: {result['environment']['cpu']} ({count(result['environment']['cores'], 'core')})",
    ]
    nn, torch, ratio = result["nnscratch"], result.get("torch"), result.get("ratio", {})

    def row(label: str, key: str, get, fmt: str) -> None:
        values = [get(nn)] + ([get(torch)] if torch else [])
        cells = [format(v, fmt) if v is not None else "-" for v in values]
        r = ratio.get(key)
        lines.append(
            f"  {label:<34}"
            + "".join(f"{cell:>12}" for cell in cells)
            + (f"{r:>10.2f}" if r is not None else "")
        )

    header = f"  {'':<34}{'nnscratch':>12}" + (f"{'torch':>12}{'ratio':>10}" if torch else "")
    lines += ["", header]
    row("train images/s", "train_images_per_s", lambda r: r["train"]["images_per_s"], ".1f")
    row("inference images/s", "infer_images_per_s", lambda r: r["infer"]["images_per_s"], ".1f")
    row(
        "train step peak memory (MiB)",
        "train_step_peak_memory",
        lambda r: r["memory"]["step_peak_mib"],
        ".0f",
    )
    row("  baseline after setup (MiB)", "", lambda r: r["memory"]["baseline_mib"], ".0f")
    if "startup" in nn:

        def latest(r):
            s = r["startup"]
            return s.get("second_process", s["first_process"])

        row(
            "start -> first step end (s)",
            "start_to_first_step_end",
            lambda r: latest(r)["start_to_first_step_end_s"],
            ".2f",
        )
        row(
            "  start -> first step start (s)",
            "",
            lambda r: latest(r)["start_to_first_step_start_s"],
            ".2f",
        )
        row("  first step (s)", "", lambda r: latest(r)["first_step_s"], ".2f")
        row("  warm step (s)", "warm_step", lambda r: latest(r)["warm_step_s"], ".2f")
        first = nn["startup"]["first_process"]
        lines.append(
            f"  (nnscratch's first process: first step {first['first_step_s']:.2f} s, "
            f"start -> first step end {first['start_to_first_step_end_s']:.2f} s; "
            "the later rows are from a second process, with numba's cache warm)"
        )
    if "breakdown" in nn:
        b = nn["breakdown"]
        lines += ["", f"  one nnscratch training step by layer type ({b['step_s']:.3f} s):"]
        for name in CATEGORIES:
            lines.append(
                f"    {name.replace('_', ' '):<22}{b['seconds'][name]:>9.3f} s"
                f"{100 * b['fractions'][name]:>7.1f} %"
            )
        if b.get("convolutions"):
            lines += ["", *conv_table(b["convolutions"])]
    lines += ["", f"memory: {result['memory_method']}"]
    if ratio:
        lines.append("ratio: nnscratch / torch (above 1 is faster for images/s, larger otherwise)")
    if c.get("blas_thread_timeout") is not None:
        lines.append(f"workers ran with OPENBLAS_THREAD_TIMEOUT={c['blas_thread_timeout']}")
    for note in filter(None, [result.get("note")]):
        lines.append(f"note: {note}")
    env = result["environment"]
    if env.get("OPENBLAS_CORETYPE") or env.get("OPENBLAS_L2_SIZE"):
        lines.append(
            f"note: OPENBLAS_CORETYPE={env['OPENBLAS_CORETYPE']} OPENBLAS_L2_SIZE="
            f"{env['OPENBLAS_L2_SIZE']} are set; they may select a slower BLAS kernel"
        )
    pools = nn["setup"].get("thread_pools")
    if pools:
        blas = [p for p in pools if p.get("user_api") == "blas"]
        for p in blas:
            lines.append(
                f"blas: {p.get('internal_api')} {p.get('version')} kernel "
                f"{p.get('architecture')}, {p.get('num_threads')} threads"
            )
    layer = nn["setup"]["numba_threading_layer"]
    lines.append(
        f"nnscratch: {nn['setup'].get('workers')} worker threads, each running its share of "
        "the batch's convolutions with single-threaded BLAS"
    )
    if layer is not None:
        lines.append(f"numba: {count(nn['setup']['numba_threads'], 'thread')}, layer {layer}")
    return "\n".join(lines)


def conv_table(convolutions: list[dict]) -> list[str]:
    """The convolutions of one training step grouped by shape: time, rate and path."""
    groups: dict[tuple, list[dict]] = {}
    for c in convolutions:
        key = (tuple(c["input"]), tuple(c["weight"]), c["stride"], c["path"])
        groups.setdefault(key, []).append(c)
    lines = [
        "  convolutions by shape (summed over the layers of each shape; GFLOP/s counts the "
        "multiply-adds of a direct convolution, x2 for the backward pass):",
        f"    {'input':<14}{'weight':<18}{'stride':>6}  {'path':<10}{'layers':>6}"
        f"{'forward ms':>12}{'GFLOP/s':>9}{'backward ms':>13}{'GFLOP/s':>9}",
    ]
    for (x, w, stride, path), members in groups.items():
        forward = sum(c["forward_s"] for c in members)
        backward = sum(c["backward_s"] for c in members)
        flop = sum(c["forward_flop"] for c in members)
        lines.append(
            f"    {'x'.join(map(str, x)):<14}{'x'.join(map(str, w)):<18}{stride:>6}  "
            f"{path:<10}{len(members):>6}{1e3 * forward:>12.1f}{flop / forward / 1e9:>9.0f}"
            f"{1e3 * backward:>13.1f}{2 * flop / backward / 1e9:>9.0f}"
        )
    return lines

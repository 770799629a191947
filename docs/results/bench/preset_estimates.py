"""Every preset's wall time on this machine, from `ticketlab lottery --preset P --workers 2 --estimate`.

    .venv/bin/python docs/results/bench/preset_estimates.py [--write-presets]

Prints a markdown table (also written to preset_estimates.md beside this file). With --write-presets it
also rewrites the `runtime` line of every preset but those in KEEP, so the presets quote numbers anyone
can regenerate. Run it on an otherwise idle machine: the paces are timed in seconds.
"""

from __future__ import annotations

import platform
import re
import sys
import time
from pathlib import Path

import torch

from ticketlab import api
from ticketlab.data import registry
from ticketlab.lottery import presets
from ticketlab.lottery.status import duration

HERE = Path(__file__).resolve().parent
PRESETS = HERE.parents[2] / "src" / "ticketlab" / "lottery" / "presets"
WORKERS = 2
# presets whose runtime says more than the estimate: measured on a real run, or the estimate put in words
KEEP = {"lenet_mnist": "measured on the Fig-4a run", "s4_lenet_mnist": "measured",
        "conv2_cifar10": "the estimate next to the pace measured on the CIFAR run",
        "s4_conv2_cifar10": "the estimate as an upper bound next to the patience stops",
        "lenet_size_sweep": "the estimate's ten sizes as ranges"}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.M)
        cpu = names[0].strip() if names else cpu
    return f"{torch.get_num_threads()}-core {cpu} VM, torch {torch.__version__.split('+')[0]} CPU"


def group_text(model: str, g: dict) -> str:
    return (f"{model} {g['iterations']:,} it x {1000 * g['step_seconds']:.1f} ms + {g['evaluations']:,} evals x "
            f"{g['examples_per_evaluation']:,} examples x {1e6 * g['example_seconds']:.0f} us = "
            f"{duration(g['job_seconds'])}/run")


def main(write: bool) -> None:
    paces: dict = {}
    where = machine()
    rows, runtimes = [], {}
    started = time.perf_counter()
    for name in presets.names():
        experiments = api.make_experiments(None, name, {})
        if any(registry.get(e.data.dataset).format == "imagefolder" for e in experiments):
            rows.append(f"| {name} | {len(experiments)} | | not timed: JPEG decoding bounds it (the preset's runtime) | |")
            continue
        reports = [api.estimate_lottery(exp, workers=WORKERS, paces=paces) for exp in experiments]
        seconds, jobs = sum(r["seconds"] for r in reports), sum(r["jobs"] for r in reports)
        parts = sorted({group_text(r["model"], g) for r in reports for g in r["groups"]})
        rows.append(f"| {name} | {len(reports)} | {jobs:,} | {duration(seconds)} | {'; '.join(parts)} |")
        runtimes[name] = (f"~{duration(seconds)} on a {where}, estimated by `ticketlab lottery --preset {name} "
                          f"--workers {WORKERS} --estimate` (docs/results/bench/preset_estimates.md): {jobs} runs; "
                          + "; ".join(parts) + "; single-model pace, so less where runs stop early, start from a "
                          "rewind point or train in batches" + ("; use --device cuda" if seconds > 7 * 86400 else ""))
        print(rows[-1], flush=True)
    table = "\n".join([
        f"# Preset runtimes estimated on this machine ({where}, --workers {WORKERS})", "",
        f"`.venv/bin/python docs/results/bench/preset_estimates.py` ({time.perf_counter() - started:.0f} s; "
        "the paces are timed once per model and training setting and shared).", "",
        "| preset | experiments | runs | estimate | per run |", "|---|---|---|---|---|", *rows, ""])
    (HERE / "preset_estimates.md").write_text(table)
    if write:
        for name, runtime in runtimes.items():
            path = PRESETS / f"{name}.toml"
            text = path.read_text()
            line = re.search(r'^runtime = "(.*)"$', text, re.M)
            if line is None or name in KEEP:
                continue
            path.write_text(text[:line.start()] + f'runtime = "{runtime}"' + text[line.end():])
            print(f"rewrote {path.name}")


if __name__ == "__main__":
    main("--write-presets" in sys.argv[1:])

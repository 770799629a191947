"""Reuse the finished jobs of a shallower or smaller experiment with the same settings.

``lottery.levels`` and ``lottery.trials`` are part of an experiment's name, yet level k of trial t
depends only on levels 0..k of trial t: its seeds come from (init seed, trial, level), never from the
experiment's name, and a model's batched trajectory does not depend on its batch mates. So when a new
experiment differs from one in the store only in those two fields, its jobs at levels up to its own
depth, in the trials both have, are the other's finished jobs: they are copied (hard links where the
file system allows, the summaries and job specs rewritten with the new names) instead of trained again.
Unfinished jobs are not copied; they train from their start.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import replace
from pathlib import Path

from ticketlab.spec import LotteryExperimentSpec, from_dict, spec_hash
from ticketlab.store import layout
from ticketlab.store.artifacts import load_json, locked, save_json

_NUMBERED = re.compile(r"^(level|flip)_(\d+)$")


def _same_but_depth(exp: LotteryExperimentSpec, name: str, other: LotteryExperimentSpec) -> bool:
    """Whether ``other`` is ``exp`` (named ``name``) with other ``lottery.levels`` / ``lottery.trials``."""
    widened = replace(other, lottery=replace(other.lottery, levels=exp.lottery.levels, trials=exp.lottery.trials))
    return spec_hash(widened, layout.LOTTERY) == name


def sources(store: Path, exp: LotteryExperimentSpec,
            data_label: str | None = None) -> list[tuple[Path, LotteryExperimentSpec]]:
    """The experiments in ``store`` that differ from ``exp`` only in levels/trials (and were made
    from the data labelled ``data_label``, when given)."""
    name = spec_hash(exp, layout.LOTTERY)
    found = []
    for meta_path in sorted(Path(store).glob(f"{layout.experiment_id(layout.LOTTERY, '*')}/{layout.SPEC}")):
        root = meta_path.parent
        if root.name == layout.experiment_id(layout.LOTTERY, name):
            continue
        try:
            meta = load_json(meta_path)
            other = from_dict(LotteryExperimentSpec, meta["spec"])
        except Exception:   # an unreadable or older experiment is simply not a source
            continue
        if data_label in (None, meta.get("data")) and _same_but_depth(exp, name, other):
            found.append((root, other))
    return found


def adopt(store: Path, exp: LotteryExperimentSpec, root: Path, data_label: str) -> list[str]:
    """Copy into ``root`` the finished jobs ``exp`` shares with other experiments in ``store`` (see the
    module's docstring); return one line per source experiment saying what was copied."""
    lines = []
    with locked(root / layout.ADOPT_LOCK):
        for source, other in sources(store, exp, data_label):
            copied = 0
            for trial in range(min(exp.lottery.trials, other.lottery.trials)):
                old_trial = layout.trial_dir(source, trial)
                for summary_path in sorted(old_trial.rglob(layout.SUMMARY)):
                    job = summary_path.parent
                    relative = job.relative_to(old_trial)
                    if not _within(relative, exp.lottery.levels):
                        continue
                    target = layout.trial_dir(root, trial) / relative
                    if not target.exists():
                        _copy_job(job, target, source.name, root.name)
                        copied += 1
            if copied:
                lines.append(f"reused {copied} finished jobs of {source.name} (same settings, "
                             f"{other.lottery.trials} trials x {other.lottery.levels} levels)")
    return lines


def _within(relative: Path, levels: int) -> bool:
    """A job under ``level_k`` or ``flip_k`` (the chain of level k's flipped ticket) with k <= levels."""
    first = _NUMBERED.match(relative.parts[0])
    return first is None or int(first.group(2)) <= levels


def _copy_job(job: Path, target: Path, old: str, new: str) -> None:
    """``job`` copied to ``target`` under the new experiment's names, whole or not at all."""
    partial = target.with_name(target.name + ".adopting")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for path in job.iterdir():
        if not path.is_file() or path.name in (layout.LOCK, layout.SUMMARY, layout.SPEC):
            continue
        try:
            os.link(path, partial / path.name)   # finished jobs' files are never written again
        except OSError:
            shutil.copy2(path, partial / path.name)
    spec = load_json(job / layout.SPEC)
    if isinstance(spec.get("context"), dict):
        spec["context"] = _renamed(spec["context"], old, new)
    save_json(partial / layout.SPEC, spec)
    summary = _renamed(load_json(job / layout.SUMMARY), old, new)
    summary["path"] = str(target.resolve())
    save_json(partial / layout.SUMMARY, summary)   # written last: the job counts as finished once renamed
    os.replace(partial, target)


def _renamed(record: dict, old: str, new: str) -> dict:
    """``record`` with experiment ``old`` (``lottery-<hash>``) renamed ``new``, in its name and run id."""
    old_id, new_id = layout.experiment_hash(old), layout.experiment_hash(new)
    record = dict(record)
    if record.get("experiment") == old:
        record["experiment"] = new
    if isinstance(record.get("run_id"), str) and record["run_id"].startswith(old_id + "-"):
        record["run_id"] = new_id + record["run_id"][len(old_id):]
    return record

"""Check a lottery experiment's invariants on what its store holds, without training (``ticketlab verify``).

The tests check these properties on small synthetic runs; this checks them on a real experiment after
the fact (days of training, several sessions, kills and resumes in between). Each check is stated from
the papers' definitions, not from the runner's code, and reads only the store:

    nested         level k's mask keeps a subset of level k-1's
    schedule       each level keeps exactly the counts `ticketlab schedule` predicts (with lottery.lpr_from:
                   the per-layer counts of that experiment's mask at the same trial and level; with
                   pruning.ties=keep: at least the round's count of the previous level's survivors)
    pruned_from    level k's mask is what pruning level k-1's trained weights gives (recomputed)
    job_mask       the IMP job, the 'ticket' branch and the reinits train under their level's mask
    random_counts  random-sparsity controls keep the ticket's per-layer counts (preserve_lpr / per_layer)
                   or its total (global)
    flip_complement  an LTH_flip chain ([S4]) starts from the complement of its level's ticket; its levels
                   are then checked like the IMP chain's (nested, pruned_from, job_mask, start: theta_0)
    start          the IMP job starts where lottery.mode says, exactly: reset -> theta_0, rewind -> the
                   dense run's weights at the rewind step, lr-rewind / continue -> level k-1's final weights
                   (times the mask); 'ticket' branches and dm_reinits start from theta_0's survivors
    seeded_init    level 0 and the reinits start from a fresh build with the seed their spec.json records
    zeros          pruned weights are exactly zero in init, step_*, resume, final and best states
    summary        a finished job's summary counts the weights its mask keeps and names its hash
    readable       every mask and weight file loads (a file that does not is reported, never rewritten)

The chain checks cover each trial's IMP levels with their branches and LTH_flip chains; one-shot jobs get
the per-job checks (zeros, summary, readable). Only what exists is checked: an experiment in
progress verifies its finished part.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ticketlab import TicketlabError, data, models
from ticketlab.data import registry
from ticketlab.lottery import plan
from ticketlab.pruning import Mask, prune, schedule
from ticketlab.pruning.schedule import groups, removal_count
from ticketlab.pruning.magnitude import prune_to_counts
from ticketlab.spec import LotteryExperimentSpec, ModelSpec, from_dict
from ticketlab.steps import Step
from ticketlab.store import layout
from ticketlab.store.artifacts import load_json, load_torch

CHECKS = ("nested", "schedule", "pruned_from", "job_mask", "random_counts", "flip_complement", "start", "seeded_init",
          "zeros", "summary", "readable")


@dataclass
class Verification:
    experiment: str
    jobs: int = 0
    checked: Counter = field(default_factory=Counter)
    failures: list[dict] = field(default_factory=list)

    def expect(self, check: str, ok: bool, path: Path, why: str) -> bool:
        self.checked[check] += 1
        if not ok:
            self.failures.append({"check": check, "path": str(path), "why": why})
        return ok

    @property
    def ok(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict:
        return {"experiment": self.experiment, "ok": self.ok, "jobs": self.jobs,
                "checked": {c: self.checked[c] for c in CHECKS}, "failed": dict(Counter(f["check"] for f in self.failures)),
                "failures": self.failures}


class _Files:
    """Loads the store's files for the checks. Masks and JSON (small) are kept; weight states are read
    each time they are needed, so memory stays at a few states even for VGG-sized experiments. Each path
    counts once under 'readable'; an unreadable file is one 'readable' failure and then None, and so is a
    file gone by the time it is read (a running experiment deletes resume.pt when a job finishes), uncounted."""

    def __init__(self, report: Verification):
        self.report, self.kept, self.seen, self.bad = report, {}, set(), set()

    def mask(self, path: Path) -> Mask | None:
        if path not in self.kept:
            self.kept[path] = self._load(path, Mask.load)
        return self.kept[path]

    def json(self, path: Path) -> dict | None:
        if path not in self.kept:
            self.kept[path] = self._load(path, load_json)
        return self.kept[path]

    def state(self, path: Path) -> dict | None:
        return self._load(path, load_torch)

    def _load(self, path: Path, loader):
        if path in self.bad:
            return None
        try:
            value = loader(path)
        except FileNotFoundError:
            return None
        except TicketlabError as exc:
            self.bad.add(path)
            self.report.expect("readable", False, path, str(exc))
            return None
        if path not in self.seen:
            self.seen.add(path)
            self.report.checked["readable"] += 1
        return value


def verify_experiment(root: Path) -> Verification:
    """Every check above on the experiment in ``root`` (a ``lottery-<hash>`` folder)."""
    root = Path(root)
    if not (root / layout.SPEC).exists():
        raise TicketlabError(f"{root} is not a lottery experiment (no {layout.SPEC}); list the store's "
                             "experiments with `ticketlab status --store DIR`")
    exp = from_dict(LotteryExperimentSpec, load_json(root / layout.SPEC)["spec"])
    report = Verification(root.name)
    files = _Files(report)
    dataset = registry.get(exp.data.dataset)
    shape = (data.input_shape(exp.data), dataset.num_classes)
    model = models.build(exp.model, *shape)
    infos = model.weight_info()
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters() if n in infos}
    predicted = schedule(shapes, infos, exp.pruning, exp.lottery.levels)
    for planned in plan.jobs(exp):
        job = root / planned.path
        if (job / layout.MASK).exists():
            report.jobs += 1
            _check_job(report, files, job, shape)
    for trial in range(exp.lottery.trials):
        _check_chain(report, files, exp, layout.trial_dir(root, trial), infos, predicted)
    return report


def _check_job(report: Verification, files: _Files, job: Path, shape: tuple) -> None:
    mask = files.mask(job / layout.MASK)
    if mask is None:
        return
    states = [job / name for name in (layout.INIT, layout.FINAL, layout.BEST)] + sorted(job.glob("step_*.pt"))
    for path in [p for p in [*states, job / layout.RESUME] if p.exists()]:
        state = files.state(path)
        if state is not None and path.name == layout.RESUME:
            state = state.get("model") if isinstance(state, dict) else None
        if state is not None:
            leaks = {n: int((state[n][~mask[n]] != 0).sum()) for n in mask if n in state}
            leaks = {n: c for n, c in leaks.items() if c}
            report.expect("zeros", not leaks, path, f"pruned weights not zero: {leaks}")
    summary = files.json(job / layout.SUMMARY) if (job / layout.SUMMARY).exists() else None
    if summary is not None:
        pruned = summary.get("weights_total", 0) - summary.get("weights_remaining", 0)
        counted = "weights_remaining" in summary and pruned == mask.size() - mask.count()
        report.expect("summary", counted and summary.get("mask_hash") == mask.hash(), job / layout.SUMMARY,
                      f"summary says {summary.get('weights_remaining')} of {summary.get('weights_total')} weights, "
                      f"hash {summary.get('mask_hash')}; the mask prunes {mask.size() - mask.count()}, hash {mask.hash()}")
    _check_seeded_init(report, files, job, mask, shape)


def _check_seeded_init(report: Verification, files: _Files, job: Path, mask: Mask, shape: tuple) -> None:
    """Jobs whose start is a fresh draw: level 0's IMP job (of the trial or of an LTH_flip chain) and the reinits."""
    if not (job.name.startswith("reinit_") or (job.parent.name == "level_0" and job.name == "main")):
        return
    if not (job / layout.INIT).exists() or not (job / layout.SPEC).exists():
        return
    init, recorded = files.state(job / layout.INIT), files.json(job / layout.SPEC)
    if init is None or recorded is None:
        return
    spec = recorded["spec"]["model"]
    fresh = models.build(from_dict(ModelSpec, spec), *shape).state_dict()
    expected = {n: fresh[n] * mask[n] if n in mask else fresh[n] for n in fresh}
    differs = [n for n in expected if n not in init or not torch.equal(init[n], expected[n])]
    report.expect("seeded_init", not differs, job / layout.INIT,
                  f"differs from a fresh build with init_seed {spec.get('init_seed')} in {differs}")


def _check_chain(report: Verification, files: _Files, exp: LotteryExperimentSpec, tdir: Path, infos: dict,
                 predicted: list[dict]) -> None:
    """The IMP chain of one trial: nesting, counts, the pruning that made each mask, where jobs start."""
    lot = exp.lottery
    level0 = layout.level_dir(tdir, 0) / "main"
    theta0 = files.state(level0 / layout.INIT) if (level0 / layout.INIT).exists() else None
    previous = files.mask(level0 / layout.MASK) if (level0 / layout.MASK).exists() else None
    rewind = _rewind_state(files, exp, level0) if lot.mode == "rewind" else None   # read once per trial
    for level in range(1, lot.levels + 1):
        ldir = layout.level_dir(tdir, level)
        target = _lpr_target(files, tdir, lot.lpr_from, level) if lot.lpr_from else None
        mask = _check_level_mask(report, files, exp, infos, ldir, layout.level_dir(tdir, level - 1), previous, target)
        if mask is None:
            break
        where = ldir / layout.MASK
        row = predicted[level]
        counts = mask.layer_counts()
        if lot.lpr_from:
            wrong = {n: (counts[n], c) for n, c in (target or {}).items() if counts.get(n) != c}
            report.expect("schedule", target is not None and not wrong, where,
                          f"kept (have, {lot.lpr_from}'s) {wrong}" if target else f"{lot.lpr_from} has no mask here")
        elif exp.pruning.ties == "keep":   # ties may keep more than the count: at least it, never more than before
            before = previous.layer_counts()
            short = {}
            for members, rate in groups(exp.pruning, list(mask), infos):
                have, had = sum(counts[n] for n in members), sum(before[n] for n in members)
                if not had - removal_count(rate, had) <= have <= had:
                    short[",".join(members)] = (have, had - removal_count(rate, had))
            report.expect("schedule", not short, where, f"kept (have, at least) {short} (pruning.ties=keep)")
        else:
            layers = {n: c for n, c in row["layers"].items() if c is not None and n in mask}
            wrong = {n: (counts[n], c) for n, c in layers.items() if counts[n] != c}
            pool = row.get("pool_remaining")
            pooled = sum(counts[n] for n, c in row["layers"].items() if c is None and n in counts)
            report.expect("schedule", not wrong and (pool is None or pooled == pool), where,
                          f"kept (have, predicted) {wrong}" + (f", pool {pooled} vs {pool}" if pool is not None else ""))
        for branch in ["ticket", *(f"reinit_{i}" for i in range(lot.reinits))]:
            _check_job_mask(report, files, ldir / branch, mask, where)
        for random_job in sorted(ldir.glob("random_*")):
            m = files.mask(random_job / layout.MASK) if (random_job / layout.MASK).exists() else None
            if m is not None:
                same = m.count() == mask.count() if "_global_" in random_job.name else m.layer_counts() == mask.layer_counts()
                report.expect("random_counts", same, random_job / layout.MASK,
                              f"keeps {m.layer_counts()}, the ticket {mask.layer_counts()}")
        if theta0 is not None:
            _check_starts(report, files, exp, tdir, level, mask, theta0, rewind)
        previous = mask
    for source in lot.flip_levels:
        _check_flip_chain(report, files, exp, tdir, source, infos, theta0)


def _lpr_target(files: _Files, tdir: Path, source: str, level: int) -> dict[str, int] | None:
    """lottery.lpr_from: the per-layer counts of that experiment's mask at this trial and level (None: absent)."""
    path = layout.level_dir(tdir.parent.parent / source / tdir.name, level) / layout.MASK
    mask = files.mask(path) if path.exists() else None
    return mask.layer_counts() if mask is not None else None


def _check_level_mask(report: Verification, files: _Files, exp: LotteryExperimentSpec, infos: dict, ldir: Path,
                      previous_dir: Path, previous: Mask | None, counts: dict[str, int] | None = None) -> Mask | None:
    """Level ``ldir``'s mask (None when it does not exist yet): nested in ``previous``, recomputed by pruning
    the previous level's IMP job (to the per-layer ``counts`` when given), and the one its IMP job trained under."""
    if previous is None or not (ldir / layout.MASK).exists() or (mask := files.mask(ldir / layout.MASK)) is None:
        return None
    where = ldir / layout.MASK
    report.expect("nested", mask.is_subset_of(previous), where, f"keeps weights {previous_dir.name} pruned")
    source = previous_dir / "main" / (layout.BEST if exp.lottery.mask_source == "best" else layout.FINAL)
    weights = files.state(source) if source.exists() else None
    if weights is not None:
        survivors = {n: weights[n] for n in previous}
        again = (prune_to_counts(survivors, previous, counts) if counts is not None else
                 prune(exp.pruning, survivors, previous, infos))
        report.expect("pruned_from", again.equals(mask), where, f"differs from pruning {source}")
    _check_job_mask(report, files, ldir / "main", mask, where)
    return mask


def _check_job_mask(report: Verification, files: _Files, job: Path, mask: Mask, where: Path) -> None:
    if (job / layout.MASK).exists() and (m := files.mask(job / layout.MASK)) is not None:
        report.expect("job_mask", m.equals(mask), job / layout.MASK, f"is not the level's mask {where}")


def _check_flip_chain(report: Verification, files: _Files, exp: LotteryExperimentSpec, tdir: Path, source: int,
                      infos: dict, theta0: dict | None) -> None:
    """[S4] LTH_flip: the complement of level ``source``'s ticket, then IMP on it, every job from theta_0."""
    fdir = layout.flip_dir(tdir, source)
    first, ticket = layout.level_dir(fdir, 0) / layout.MASK, layout.level_dir(tdir, source) / layout.MASK
    if not first.exists() or not ticket.exists():
        return
    previous, ticket_mask = files.mask(first), files.mask(ticket)
    if previous is None or ticket_mask is None:
        return
    report.expect("flip_complement", previous.equals(~ticket_mask), first, f"is not the complement of {ticket}")
    for level in range(exp.lottery.flip_rounds + 1):
        ldir = layout.level_dir(fdir, level)
        mask = previous if level == 0 else _check_level_mask(report, files, exp, infos, ldir,
                                                             layout.level_dir(fdir, level - 1), previous)
        if mask is None:
            break
        if level == 0:
            _check_job_mask(report, files, ldir / "main", mask, first)
        init_path = ldir / "main" / layout.INIT
        if theta0 is not None and init_path.exists() and (init := files.state(init_path)) is not None:
            differs = [n for n in mask if not torch.equal(init[n], theta0[n] * mask[n])]
            report.expect("start", not differs, init_path, f"{differs} differ from theta_0 times the mask")
        previous = mask


def _check_starts(report: Verification, files: _Files, exp: LotteryExperimentSpec, tdir: Path, level: int,
                  mask: Mask, theta0: dict, rewind: tuple[dict | None, str] | None) -> None:
    """``rewind``: the dense run's state at the rewind step and its name (mode=rewind), else None."""
    lot, ldir = exp.lottery, layout.level_dir(tdir, level)
    if lot.mode == "reset":
        main_start, what = theta0, "theta_0"
    elif lot.mode == "rewind":
        main_start, what = rewind
    else:
        previous = layout.level_dir(tdir, level - 1) / "main" / layout.FINAL
        main_start, what = (files.state(previous) if previous.exists() else None), f"{previous}"
    ticket_start = rewind if rewind is not None else (theta0, "theta_0")
    starts = {"main": (main_start, what), "ticket": ticket_start}
    for branch in sorted(ldir.glob("dm_reinit_*")):
        starts[branch.name] = None  # survivors are a permutation of theta_0's: checked below
    for branch, expected in starts.items():
        init_path = ldir / branch / layout.INIT
        if not init_path.exists() or (init := files.state(init_path)) is None:
            continue
        if expected is None:
            permuted = all(torch.equal(init[n][mask[n]].sort().values, theta0[n][mask[n]].sort().values) for n in mask)
            report.expect("start", permuted, init_path, "survivors are not a permutation of theta_0's")
            continue
        state, what = expected
        if state is None:
            continue
        differs = [n for n in mask if not torch.equal(init[n], state[n] * mask[n])]
        report.expect("start", not differs, init_path, f"{differs} differ from {what} times the mask")


def _rewind_state(files: _Files, exp: LotteryExperimentSpec, level0: Path) -> tuple[dict | None, str]:
    """The dense run's weights at the rewind step: step_<r>.pt when the step is given in iterations; in
    epochs (which need the training split's size) the dense run's only kept checkpoint, if it has one."""
    rewind: Step = exp.lottery.rewind
    if rewind.unit == "it":
        if rewind.amount == 0:
            return files.state(level0 / layout.INIT), "theta_0 (rewind to step 0)"
        path = level0 / layout.step_checkpoint(rewind.amount)
    else:
        kept = sorted(level0.glob("step_*.pt"))
        if len(kept) != 1:
            return None, f"the rewind point ({rewind}: several kept checkpoints, none checked)"
        path = kept[0]
    return (files.state(path) if path.exists() else None), str(path)


def format_verification(report: Verification) -> str:
    lines = [f"{report.experiment}: {report.jobs} jobs, " + ("all checks pass" if report.ok else f"{len(report.failures)} FAILED")]
    failed = Counter(f["check"] for f in report.failures)
    for check in CHECKS:
        if report.checked[check]:
            lines.append(f"  {check:<16} {report.checked[check]:>6} checked" + (f", {failed[check]} failed" if failed[check] else ""))
    for failure in report.failures[:20]:
        lines.append(f"  FAILED {failure['check']}: {failure['path']}: {failure['why']}")
    if len(report.failures) > 20:
        lines.append(f"  ... {len(report.failures) - 20} more (--json lists them all)")
    return "\n".join(lines)

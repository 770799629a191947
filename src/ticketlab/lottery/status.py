"""What a lottery experiment has finished and what remains, read from the store without training.

A long experiment runs across sessions (kill, rerun the same command, it resumes); this answers "where
is it?" without starting anything: every job the experiment's spec plans, each one `done` (its
summary.json exists), `running` (another process holds its lock), `partial` (started, then stopped:
the last logged step and the total) or `pending`, with counts of jobs and of training iterations.

The jobs are the plan's (lottery/plan.py), the one the runner trains; tests/test_status.py checks it
against the jobs a real run leaves behind.
"""

from __future__ import annotations

import json
from pathlib import Path

from ticketlab import TicketlabError
from ticketlab.lottery import plan
from ticketlab.spec import LotteryExperimentSpec, from_dict
from ticketlab.steps import Step
from ticketlab.store import layout
from ticketlab.store.artifacts import load_json, locked
from ticketlab.train.metrics import WALL


PlannedJob = plan.Job   # the name status used for a planned job


def planned_jobs(exp: LotteryExperimentSpec) -> list[plan.Job]:
    """Every job ``ticketlab lottery`` trains for ``exp``, in the order it trains them (lottery/plan.py)."""
    return plan.jobs(exp)


def _head_step(metrics: Path) -> int | None:
    """The first step logged in a metrics.jsonl (where the job started: 0, or k when rewound to k)."""
    with open(metrics, "rb") as handle:
        try:
            return int(json.loads(handle.readline())["step"])
        except (ValueError, KeyError, TypeError):
            return None


def _tail(metrics: Path) -> tuple[int, list[tuple[int, float]]]:
    """The last step logged in a metrics.jsonl (0 if none) and the (step, ``time/wall_seconds``) records
    of the file's last 4 KiB (about ten evaluations; none in files written before the time was logged),
    oldest first, ending at that step when its time is logged: read from the end, so it is cheap."""
    if not metrics.exists():
        return 0, []
    with open(metrics, "rb") as handle:
        handle.seek(0, 2)
        handle.seek(max(0, handle.tell() - 4096))
        lines = handle.read().splitlines()
    step, times = None, []
    for line in reversed(lines):
        try:
            record = json.loads(line)
            step = int(record["step"]) if step is None else step
            if record["name"] == WALL:
                times.append((int(record["step"]), float(record["value"])))
        except (ValueError, KeyError, TypeError):
            continue  # a torn last line, or the chunk started mid-line
    times.reverse()
    return step or 0, times if times and times[-1][0] == step else []


def _pace(job: Path, times: list[tuple[int, float]], recent: bool) -> float | None:
    """Seconds per iteration of a job: over the last logged evaluations (``recent``: the pace now, which a
    pause or a busier machine earlier in the run does not skew), else over the whole run."""
    if recent and len(times) >= 2 and times[-1][0] > times[0][0]:
        return (times[-1][1] - times[0][1]) / (times[-1][0] - times[0][0])
    first = _head_step(job / layout.METRICS) if times else None
    return times[-1][1] / (times[-1][0] - first) if first is not None and times[-1][0] > first else None


def _is_locked(job: Path) -> bool:
    if not (job / layout.LOCK).exists():
        return False
    try:
        with locked(job / layout.LOCK, wait=False):
            return False
    except TicketlabError:
        return True


def _total_steps(job: Path, default: int | None) -> int | None:
    """A job's planned iterations: from its spec.json when given in iterations, else ``default``."""
    try:
        steps = Step.parse(load_json(job / layout.SPEC)["spec"]["training"]["steps"])
    except (OSError, ValueError, KeyError, TicketlabError):
        return default
    return steps.amount if steps.unit == "it" else default


def experiment_status(root: Path, exp: LotteryExperimentSpec | None = None) -> dict:
    """The state of every planned job of the experiment in ``root`` (a ``lottery-<hash>`` folder); its
    spec is read from the folder unless given (an experiment not started yet has no folder)."""
    root = Path(root)
    meta = {}
    if exp is None:
        if not (root / layout.SPEC).exists():
            raise TicketlabError(f"{root} is not a lottery experiment (no {layout.SPEC}); list the store's "
                                 "experiments with `ticketlab status --store DIR`")
        meta = load_json(root / layout.SPEC)
        exp = from_dict(LotteryExperimentSpec, meta["spec"])
    jobs, iterations_of, pace = [], [], {}
    for planned in planned_jobs(exp):
        job = root / planned.path
        row = {"path": planned.path, "kind": planned.kind, "trial": planned.trial, "level": planned.level,
               "branch": planned.branch}
        if (job / layout.SUMMARY).exists():
            summary = load_json(job / layout.SUMMARY)
            # a batch's models share its time; summaries older than batch_models count it once each
            row.update(state="done", step=summary["iterations"], total=summary["iterations"],
                       seconds=summary.get("wall_seconds", 0.0) / summary.get("batch_models", 1),
                       batch_models=summary.get("batch_models", 1))
            iterations_of.append(summary["iterations"])
        elif job.exists():
            step, times = _tail(job / layout.METRICS)
            row.update(state="running" if _is_locked(job) else "partial", step=step)
            if row["state"] == "running":
                pace[planned.path] = _pace(job, times, recent=True)
        else:
            row.update(state="pending", step=0)
        jobs.append(row)
    typical = (max(set(iterations_of), key=iterations_of.count) if iterations_of else
               exp.training.steps.amount if exp.training.steps.unit == "it" else None)
    for row in jobs:
        if "total" not in row:
            row["total"] = _total_steps(root / row["path"], None) or typical
    counts = {state: sum(r["state"] == state for r in jobs) for state in ("done", "running", "partial", "pending")}
    known = [r for r in jobs if r["total"] is not None]
    planned = sum(r["total"] for r in known) if len(known) == len(jobs) else None
    done = sum(min(r["step"], r["total"]) for r in known)
    return {**_time_left(root, jobs, pace, planned, done),
            "experiment": root.name, "data": meta.get("data", exp.data.dataset), "model": exp.model.name, "trials": exp.lottery.trials,
            "levels": exp.lottery.levels, "jobs": jobs, "counts": counts, "planned": len(jobs),
            "iterations_done": done, "iterations_planned": planned}


def _time_left(root: Path, jobs: list[dict], pace: dict, planned: int | None, done: int) -> dict:
    """The time spent on finished jobs (their ``wall_seconds``, a batch's time shared among its models) and
    an estimate of the time left: the remaining iterations at the running jobs' pace now (the median over
    them of the seconds per iteration over their last ~10 evaluations) divided by how many run at once
    (worker processes x models per batch); with none running, at the finished jobs' pace (over each whole
    run) per model, one process at a time. No estimate before some
    job has logged its time (``time/wall_seconds``, older stores have none)."""
    spent = sum(r["seconds"] for r in jobs if r["state"] == "done")
    paces, at_once, source = [p for p in pace.values() if p is not None], len(pace), "running"
    if not paces:
        at_once, source = 1, "finished"
        for r in jobs:
            if r["state"] == "done":
                pace_of_batch = _pace(root / r["path"], _tail(root / r["path"] / layout.METRICS)[1], recent=False)
                paces += [pace_of_batch / r["batch_models"]] if pace_of_batch is not None else []
    if not paces or planned is None:
        return {"seconds_spent": spent, "seconds_per_iteration": None, "pace_of": None, "jobs_at_once": at_once,
                "seconds_left": None}
    median = sorted(paces)[len(paces) // 2]
    return {"seconds_spent": spent, "seconds_per_iteration": median, "pace_of": source, "jobs_at_once": at_once,
            "seconds_left": (planned - done) * median / at_once}


def experiments(store: Path) -> list[Path]:
    """The lottery experiment folders of a store."""
    return sorted(p for p in Path(store).glob(layout.experiment_id(layout.LOTTERY, "*")) if (p / layout.SPEC).exists())


def _progress(row: dict) -> str:
    where = row["path"].split("/", 1)[1]
    steps = f"{row['step']:,}/{row['total']:,}" if row["total"] else f"{row['step']:,}"
    return f"{where} {steps}" + (" (running)" if row["state"] == "running" else "")


def duration(seconds: float) -> str:
    """12 s, 14 min, 3.2 h, 5.1 days, 2.4 years."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds < 365 * 86400:
        return f"{seconds / 86400:.1f} days"
    return f"{seconds / (365.25 * 86400):.1f} years"


def _time_text(status: dict, finished: bool) -> str:
    text = f"time: {duration(status['seconds_spent'])} of training in finished jobs (summed over processes)"
    if finished or status["seconds_left"] is None:
        return text
    pace, at_once = status["seconds_per_iteration"], status["jobs_at_once"]
    how = f"{at_once} jobs at once" if at_once > 1 else "one job at a time"
    return (f"{text}; about {duration(status['seconds_left'])} left at the {status['pace_of']} jobs' pace "
            f"({1000 * pace:.0f} ms per iteration, {how})")


def format_status(status: dict) -> str:
    """A few lines per experiment: totals, then per trial the finished levels and the unfinished jobs."""
    c, jobs = status["counts"], status["jobs"]
    lines = [f"{status['experiment']}: {status['model']} on {status['data']}, {status['trials']} trials x "
             f"{status['levels']} levels"]
    done_it, planned_it = status["iterations_done"], status["iterations_planned"]
    share = f" ({100 * done_it / planned_it:.0f}%)" if planned_it else ""
    planned_text = f"{planned_it:,}" if planned_it else "?"
    lines.append(f"  jobs {c['done']}/{status['planned']} done, {c['running']} running, {c['partial']} stopped "
                 f"part-way, {c['pending']} not started; iterations {done_it:,}/{planned_text}{share}")
    lines.append("  " + _time_text(status, finished=c["done"] == status["planned"]))
    for trial in sorted({r["trial"] for r in jobs}):
        rows = [r for r in jobs if r["trial"] == trial and r["kind"] == "lottery"]
        finished = [lv for lv in sorted({r["level"] for r in rows})
                    if all(r["state"] == "done" for r in rows if r["level"] == lv)]
        prefix = 0
        while prefix in finished:
            prefix += 1
        text = {0: "no level done", 1: "level 0 done"}.get(prefix, f"levels 0-{prefix - 1} done")
        open_jobs = [r for r in jobs if r["trial"] == trial and r["state"] in ("running", "partial")]
        busy = ", ".join(_progress(r) for r in open_jobs)
        lines.append(f"  trial {trial}: {text}" + (f"; in progress: {busy}" if busy else ""))
    if c["done"] == status["planned"]:
        lines.append("  finished")
    return "\n".join(lines)

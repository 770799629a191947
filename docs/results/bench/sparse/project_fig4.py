"""Project the Lenet Fig-4 protocol's wall time with sparse layers from two measurements:

- the end-to-end projection of the dense batched engine with test_eval=reported (docs/results/bench/
  e2e_fig4_short.csv: 1,000- and 3,000-iteration runs of 5 trials x levels 0-3 with 3 reinits, --workers 2),
  which holds for every level where no layer is sparse (levels 0-8: fc density >= 16.8%);
- levels.csv (sparse_levels.py): the stacked engine's model-steps/s at levels 9-20 with the default
  threshold. A dense job costs the same at every level, so each level's cost factor is the mean dense rate
  over the measured levels (machine noise moves single dense rates by up to 1.5x) divided by its sparse
  rate; levels between measured ones are interpolated linearly, and factors above 1 are capped at 1.

    .venv/bin/python docs/results/bench/sparse/project_fig4.py

Since session 4 the sparse number is also measured directly: the whole protocol (5 trials x levels 0-20,
3 reinits, 405 runs) shortened to 500 and 1,500 iterations per run (e2e_fig4_all_levels.csv), extrapolated
from its slope, beside the dense engine's levels 0-3 timed in the same sitting.
"""

import csv
from pathlib import Path

HERE = Path(__file__).parent
PROTOCOL_RUNS = 5 * 21 + 5 * 20 * 3  # 5 trials x levels 0-20, 3 reinits at levels 1-20 (`lottery --dry-run`: 405)
ITERATIONS = 50_000


def protocol_hours(csv_path: Path, engine: str) -> float:
    """Hours of the full protocol from a shortened run of ``engine`` at two lengths: the slope between
    them is the cost per model-step, the intercept the fixed cost per job, both scaled to 405 jobs of
    50,000 iterations (a shortened run of all 21 levels has exactly the protocol's jobs)."""
    rows = sorted((int(r["steps"]), float(r["wall_s"]), int(r["runs"]))
                  for r in csv.DictReader(open(csv_path)) if r["engine"] == engine)
    (short_steps, short, runs), (long_steps, long, _) = rows[0], rows[-1]
    per_step = (long - short) / ((long_steps - short_steps) * runs)   # seconds per model-step
    fixed = short / runs - short_steps * per_step                     # seconds per job that do not grow with it
    return PROTOCOL_RUNS * (ITERATIONS * per_step + fixed) / 3600


def dense_hours(engine: str = "auto+test_eval=reported") -> float:
    return protocol_hours(HERE.parent / "e2e_fig4_short.csv", engine)


def level_factors() -> dict[int, float]:
    rows = list(csv.DictReader(open(HERE / "levels.csv")))
    dense = sum(float(r["dense_model_steps_per_s"]) for r in rows) / len(rows)
    measured = {int(r["level"]): min(1.0, dense / float(r["sparse_model_steps_per_s"])) for r in rows}
    factors = {level: 1.0 for level in range(min(measured))}
    points = sorted(measured)
    for a, b in zip(points, points[1:]):
        for level in range(a, b):
            factors[level] = measured[a] + (measured[b] - measured[a]) * (level - a) / (b - a)
    factors[points[-1]] = measured[points[-1]]
    return factors


def main() -> None:
    print("session 2, e2e_fig4_short.csv (levels 0-3 at 1,000 and 3,000 iterations per run):")
    for engine in ("sequential", "auto"):
        print(f"  {engine}: {dense_hours(engine):.1f} h")
    hours, factors = dense_hours(), level_factors()
    share = sum(factors.values()) / len(factors)
    print(f"  dense batched engine, test_eval=reported: {hours:.1f} h")
    print("  projected with sparse layers, per-level factors of levels.csv: "
          + ", ".join(f"{k}: {v:.2f}" for k, v in sorted(factors.items()) if v < 1))
    print(f"  -> {hours * share:.1f} h ({share:.2f} of dense)")
    measured = HERE.parent / "e2e_fig4_all_levels.csv"
    print("session 4, e2e_fig4_all_levels.csv (500 and 1,500 iterations per run, one sitting):")
    dense = protocol_hours(measured, "auto --set training.test_eval=reported --sparse-below 0")
    sparse = protocol_hours(measured, "auto --set training.test_eval=reported")
    print(f"  dense batched engine (levels 0-3, 65 runs; a dense run costs the same at every level): {dense:.1f} h")
    print(f"  sparse layers (the default), every level 0-20 (the protocol's 405 runs): {sparse:.1f} h ({sparse / dense:.2f} of dense)")


if __name__ == "__main__":
    main()

"""The README's Fig-4a table from this folder's table.txt (written by snapshot.sh): per level, the
tickets' and the reinits' mean early-stop iteration and test accuracy at early stop, beside [S1]'s claims.

    .venv/bin/python docs/results/lenet_fig4/readme_rows.py
"""

from pathlib import Path

PAPER = {0: "dense ≈ 98%", 3: "Pm 51.3% learns faster than dense",
         7: "tickets learn faster down to 21% (38% earlier); reinit falls off from here",
         9: "ticket > 0.3 points above dense at 13.5%", 15: "back to dense early stop and accuracy at 3.6%"}


def main() -> None:
    rows: dict[int, dict] = {}
    lines = (Path(__file__).parent / "table.txt").read_text().splitlines()
    for line in lines[1:]:
        family, level, pm, n, early_stop, test = line.split()[:6]
        rows.setdefault(int(level), {})[family] = (float(pm), int(n), int(early_stop), float(test))
    print("| level | Pm | ticket early stop / test acc. | reinit early stop / test acc. | [S1] Fig 4a |")
    print("|---|---|---|---|---|")
    for level in sorted(rows):
        cells = []
        for family, usual in (("ticket", 3), ("reinit", 9)):
            if family in rows[level]:
                _, n, early_stop, test = rows[level][family]
                cells.append(f"{early_stop:,} / {100 * test:.2f}%" + (f" (n={n})" if n != usual else ""))
            else:
                cells.append("")
        pm = next(iter(rows[level].values()))[0]
        print(f"| {level} | {pm:.2f}% | {cells[0]} | {cells[1]} | {PAPER.get(level, '')} |")


if __name__ == "__main__":
    main()

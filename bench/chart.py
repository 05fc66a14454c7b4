"""bench/results.svg: ours against skopeo, row by row, from the numbers a run saved in bench/results.json.

    .venv-bench/bin/python bench/chart.py [bench/results.json [bench/results.svg]]

bench/run.py (its "run" key) and bench/fleet.py (its "fleet" key) save their rows there and call this
script after each run; run it by hand to redraw the chart without measuring again. Time rows are one
pair of bars per measure (median, with the min-max spread of the rounds as error bars), labelled with
the ratio and its target; memory rows are bars in MB. matplotlib comes from .venv-bench (`make
bench-venv`, bench/requirements.txt), never from the test or runtime venv. The SVG is meant to be
committed: the Agg backend, a fixed hash salt and no date, so the same numbers draw the same file.
"""

import json
import statistics
import sys
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

BENCH = Path(__file__).resolve().parent
OURS, SKOPEO = "#1f77b4", "#ff7f0e"
SOURCES = (("run", ""), ("fleet", "fleet: "))  # results.json keys, drawn in this order


def _rows(data, kind):
    found = []
    for key, prefix in SOURCES:
        for row in data.get(key, {}).get(kind, []):
            found.append(dict(row, measure=prefix + row["measure"]))
    return found


def _bar(axis, y, values, color, label):
    """One horizontal bar at the median of `values`, the min-max spread as its error bar; returns the median."""
    median = statistics.median(values)
    axis.barh(y, median, height=0.38, color=color, label=label,
              xerr=[[median - min(values)], [max(values) - median]], capsize=3, error_kw={"elinewidth": 1})
    return median


def _time_axis(axis, rows):
    labels, widest = [], 0
    for number, row in enumerate(rows):
        base = -number
        theirs = _bar(axis, base - 0.2, row["skopeo"], SKOPEO, "skopeo" if number == 0 else None)
        if row["ours"]:
            ours = _bar(axis, base + 0.2, row["ours"], OURS, "ours" if number == 0 else None)
            note = "ours/skopeo %.2f (target %s)" % (ours / theirs, row["target"] or "none")
            right = max(row["ours"] + row["skopeo"])
        else:
            note, right = row.get("missing") or "n/a", max(row["skopeo"])
        axis.text(right * 1.02, base, note, va="center", fontsize=8)
        labels.append(textwrap.fill(row["measure"], 48))
        widest = max(widest, right)
    axis.set_yticks([-n for n in range(len(rows))], labels, fontsize=8)
    axis.set_xlabel("seconds (median, min-max)")
    axis.set_xlim(0, widest * 1.6)  # room for the ratio beside the longest bar
    handles, names = axis.get_legend_handles_labels()
    # ours first, as in the bars; above the axis, clear of them
    axis.legend(handles[::-1], names[::-1], loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2, fontsize=8,
                frameon=False)
    axis.set_title("time: ours / skopeo", fontsize=10, loc="left")


def _memory_axis(axis, rows):
    labels = []
    for number, row in enumerate(rows):
        base = -number
        axis.barh(base + 0.2, row["ours"], height=0.38, color=OURS)
        right = row["ours"]
        if row.get("skopeo") is not None:
            axis.barh(base - 0.2, row["skopeo"], height=0.38, color=SKOPEO)
            right = max(right, row["skopeo"])
        axis.text(right * 1.02 + 0.5, base, "%.1f MB (target %s)" % (row["ours"], row["target"] or "none"),
                  va="center", fontsize=8)
        labels.append(textwrap.fill(row["measure"], 48))
    axis.set_yticks([-n for n in range(len(rows))], labels, fontsize=8)
    axis.set_xlabel("MB")
    axis.set_xmargin(0.35)
    axis.set_xlim(left=min(0, min(row["ours"] for row in rows)))  # a difference may come out slightly negative
    axis.set_title("memory: peak RSS", fontsize=10, loc="left")


def draw(data, svg_path):
    times, memory = _rows(data, "time_rows"), _rows(data, "memory_rows")
    plt.rcParams["svg.hashsalt"] = "imagepusher-bench"  # fixed ids in the SVG: same numbers, same file
    heights = [max(len(times), 1) * 0.75 + 0.8, max(len(memory), 1) * 0.6 + 0.8]
    figure, (time_axis, memory_axis) = plt.subplots(2, 1, figsize=(11, sum(heights) + 0.8),
                                                    gridspec_kw={"height_ratios": heights})
    if times:
        _time_axis(time_axis, times)
    if memory:
        _memory_axis(memory_axis, memory)
    run = data.get("run", {})
    if run:
        figure.suptitle("imagepusher.registry against skopeo, %s: %d MB image, %d rounds%s (load %s)"
                        % (run["date"], run["size_mb"], run["rounds"], ", smoke run" if run.get("smoke") else "",
                           run["load_start"]), fontsize=10)
    figure.tight_layout()
    figure.savefig(svg_path, format="svg", metadata={"Date": None})
    plt.close(figure)


def main():
    json_path = Path(sys.argv[1]) if len(sys.argv) > 1 else BENCH / "results.json"
    svg_path = Path(sys.argv[2]) if len(sys.argv) > 2 else json_path.with_suffix(".svg")
    draw(json.loads(json_path.read_text()), svg_path)
    print("drew %s" % svg_path)


if __name__ == "__main__":
    main()

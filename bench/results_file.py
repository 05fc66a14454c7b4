"""Where benchmark results go: each script's own marked block of bench/RESULTS.md, and bench/results.json.

Several scripts write to RESULTS.md (run.py's table at the top, fleet.py's rows further down) and
people write history and readings between them by hand. So a script replaces only the lines between
its own two markers and keeps every other line; the first time (no markers yet) its block is added
at the top or at the end. results.json holds the numbers each script measured, under a key of its
own, for bench/chart.py to draw from.
"""

import json
import os
import subprocess
from pathlib import Path

BENCH = Path(__file__).resolve().parent
CHART_PYTHON = BENCH.parent / ".venv-bench" / "bin" / "python"


def replace_section(path, begin, end, section, at_top=False):
    """Put `section` (which starts with `begin` and ends with `end`) in place of the block between
    those markers in the file at `path`, or add it at the top / the end when the file has none."""
    path = Path(path)
    text = path.read_text() if path.exists() else ""
    if begin in text and end in text[text.index(begin):]:
        start = text.index(begin)
        stop = text.index(end, start) + len(end)
        text = text[:start] + section + text[stop:]
    elif at_top:
        text = section + "\n" + ("\n" + text if text else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def save_numbers(path, key, numbers):
    """Store `numbers` under `key` in the JSON file at `path`, keeping the other scripts' keys."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(path.read_text()) if path.exists() else {}
    data[key] = numbers
    # default=str: start-up rows come from bench/startup.py, whatever types it returns.
    path.write_text(json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")


def draw_chart(json_path, svg_path, python=None):
    """Redraw the chart with bench/chart.py in the bench venv (matplotlib lives only there).

    Returns a line saying what happened: without the venv (`make bench-venv`) the chart is skipped,
    never the run."""
    python = Path(python or os.environ.get("BENCH_CHART_PYTHON") or CHART_PYTHON)
    if not python.exists():
        return "chart: skipped (no %s; `make bench-venv` makes it)" % python
    proc = subprocess.run([str(python), str(BENCH / "chart.py"), str(json_path), str(svg_path)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit("chart failed:\n%s" % (proc.stdout + proc.stderr)[-3000:])
    return "chart: %s (%d bytes)" % (svg_path, Path(svg_path).stat().st_size)

"""`make bench-smoke` in CI: the benchmark harness runs end to end on a tiny image.

The numbers mean nothing at this size (benchmarks, not timed tests); what is checked is that
every measurement ran and the table, ratios, warm re-run and scale lines come out, and that the
chart step ran (it is skipped, with a note, where .venv-bench is not installed).
"""

import json
import re
import subprocess
import sys

import pytest

from tests.support import REPO_ROOT


@pytest.mark.slow
def test_bench_smoke_runs_every_measurement(tmp_path):
    out = tmp_path / "RESULTS.md"
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "run.py"), "--smoke", "--out", str(out),
                           "--results-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = proc.stdout
    for row in ("cold mirror, one pass", "cold mirror, two tasks", "pull alone", "peak RSS"):
        assert re.search(r"\| %s[^|]*\|[^|]*\d" % re.escape(row), text), (row, text)
    assert re.search(r"\| pull alone \| [\d.]+ \([\d.]+-[\d.]+\) \| [\d.]+ \([\d.]+-[\d.]+\) \| [\d.]+ \|", text), text
    # A warm re-run asks each registry one HEAD and moves no blob bytes, even at this size.
    assert re.search(r"requests reaching the registries: HEAD /v2/bench/big/manifests/v1, "
                     r"HEAD /v2/ours/warm/manifests/v1; blob bytes: 0\.", text), text
    assert re.search(r"Scale: the mirror_images role over 3 small images, warm: [\d.]+ s, 6 requests in all", text), text
    # Issue 16's rows: image_mirror against skopeo through ansible-playbook and as processes, memory of a big image
    # (unless bench/startup.py's rows already hold that one).
    numbers = json.loads((tmp_path / "results.json").read_text())["run"]
    rows = ["cold mirror, one pass, through ansible-playbook", "cold mirror, one pass, module process ("]
    if not numbers["startup"]["covers_big_rss"]:
        rows += ["peak RSS of the module process, one-pass mirror of a 8 MB image", "the same, 8 MB image minus 4 MB"]
    for row in rows:
        assert re.search(r"\| %s[^|]*\|[^|]*\d" % re.escape(row), text), (row, text)
    assert re.search(r"\| cold mirror, one pass, module process with `cache: false`[^|]*\| "
                     r"([\d.]+ \([\d.]+-[\d.]+\)|n/a \(option not available\)) \|", text), text
    assert "start-up rows: measured by make bench, not in a smoke run." in text, text
    assert re.search(r"^chart: ", text, re.M), text  # drawn, or skipped without .venv-bench
    assert numbers["smoke"] and len(numbers["time_rows"]) == 6 and len(numbers["memory_rows"]) >= 2, numbers
    assert not out.exists()  # a smoke run never overwrites the recorded results

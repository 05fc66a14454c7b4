# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where benchmark results go: each script's marked block of bench/RESULTS.md, results.json, the table.

bench/run.py used to overwrite RESULTS.md whole, which wiped the hand-written history and the fleet
rows below its table. No registry, no Ansible: the pure parts of bench/ only.
"""

import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import results_file  # noqa: E402  pylint: disable=wrong-import-position
import run_report  # noqa: E402  pylint: disable=wrong-import-position
import startup  # noqa: E402  pylint: disable=wrong-import-position

FLEET = ("<!-- fleet rows: bench/fleet.py -->", "<!-- end of fleet rows -->")


def test_a_block_is_replaced_and_every_other_line_kept(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("\n".join([run_report.BEGIN, "old table", run_report.END, "", "## History", "by hand",
                               FLEET[0], "old fleet", FLEET[1], "", "notes after the fleet rows", ""]))
    table = "%s\nnew table\n%s" % (run_report.BEGIN, run_report.END)
    results_file.replace_section(path, run_report.BEGIN, run_report.END, table)
    results_file.replace_section(path, FLEET[0], FLEET[1], "%s\nnew fleet\n%s" % FLEET)
    assert path.read_text().splitlines() == [run_report.BEGIN, "new table", run_report.END, "", "## History", "by hand",
                                             FLEET[0], "new fleet", FLEET[1], "", "notes after the fleet rows"]


def test_a_block_without_markers_yet_goes_at_the_top_or_the_end(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("## History\nby hand\n")
    results_file.replace_section(path, "<a>", "</a>", "<a>\ntop\n</a>", at_top=True)
    results_file.replace_section(path, "<b>", "</b>", "<b>\nend\n</b>")
    assert path.read_text() == "<a>\ntop\n</a>\n\n## History\nby hand\n\n<b>\nend\n</b>\n"
    results_file.replace_section(tmp_path / "new.md", "<a>", "</a>", "<a>\nonly\n</a>", at_top=True)
    assert (tmp_path / "new.md").read_text() == "<a>\nonly\n</a>\n"


def test_numbers_keep_the_other_scripts_keys(tmp_path):
    path = tmp_path / "results.json"
    results_file.save_numbers(path, "fleet", {"rounds": 3})
    results_file.save_numbers(path, "run", {"rounds": 5})
    results_file.save_numbers(path, "run", {"rounds": 2})
    assert json.loads(path.read_text()) == {"fleet": {"rounds": 3}, "run": {"rounds": 2}}


def test_the_chart_is_skipped_not_the_run_without_its_venv(tmp_path):
    note = results_file.draw_chart(tmp_path / "results.json", tmp_path / "results.svg", python=tmp_path / "none")
    assert note.startswith("chart: skipped") and not (tmp_path / "results.svg").exists()


def numbers(cache_option, startup_rows=None, big=True):
    series = dict((key, [2.0, 1.0, 3.0]) for key in (
        "ours_list_play", "skopeo_task_play", "ours_module", "ours_module_cpu", "ours_module_requests", "ours_push_source",
        "ours_pull_push", "skopeo_mirror", "skopeo_mirror_cpu", "skopeo_mirror_requests", "ours_pull", "skopeo_pull",
        "ours_rss", "ours_pull_rss", "skopeo_rss", "ansible_floor"))
    series["skopeo_mirror"] = [4.0, 4.0, 5.0]
    for key in ("ours_nocache", "ours_nocache_cpu", "ours_nocache_requests", "ours_nocache_disk"):
        series[key] = [1.0, 1.0, 1.0] if cache_option else []
    once = {"warm_s": 1.0, "warm_requests": ["HEAD /v2/a/manifests/v1"], "warm_blob_bytes": 0, "small_pull_rss": 1.5,
            "role_cold_s": 3.0, "role_warm_s": 2.0, "role_requests": 6, "role_empty_s": 1.0}
    if big:
        once.update(big_mirror_rss=30.0, tiny_mirror_rss=28.0)
    return {"date": "2026-12-05", "size_mb": 1400, "layers": 6, "rounds": 3, "images": 3, "big_mb": 5000, "smoke": False,
            "load_start": "0.1 0.2 0.3", "load_end": "0.4 0.5 0.6", "took_s": 600.0, "cache_option": cache_option,
            "series": series, "once": once,
            "startup": {"rows": startup_rows, "note": None if startup_rows else "no start-up rows",
                        "covers_big_rss": not big}}


def test_the_table_has_each_row_with_median_spread_and_ratio():
    text = run_report.render(numbers(cache_option=True))
    assert text.startswith(run_report.BEGIN) and text.endswith(run_report.END)
    assert "| cold mirror, one pass, module process (`image_mirror`, empty cache) against the skopeo CLI" \
           " | 2.00 (1.00-3.00) | 4.00 (4.00-5.00) | 0.50 | <= 0.85 |" in text
    assert "| cold mirror, one pass, module process with `cache: false` against the skopeo CLI | 1.00 (1.00-1.00)" in text
    assert "| peak RSS of the module process, one-pass mirror of a 5000 MB image, MB | 30.0 |  | | <= 40 |" in text
    assert "| the same, 5000 MB image minus 4 MB image, MB | 2.0 |  | | <= 4 |" in text
    assert "1 bytes on disk" in text and "the run took 10.0 min" in text and "no start-up rows." in text


def test_an_option_the_module_lacks_is_a_row_saying_so():
    text = run_report.render(numbers(cache_option=False))
    assert "| cold mirror, one pass, module process with `cache: false` against the skopeo CLI" \
           " | n/a (option not available) | 4.00 (4.00-5.00) | n/a | <= 0.8 |" in text
    times, _memory = run_report.table_rows(numbers(cache_option=False))
    assert [row["ours"] for row in times if "cache: false" in row["measure"]] == [None]


def test_startup_rows_are_rendered_whatever_their_values():
    rows = {"import image_mirror, s": [0.5, 0.4, 0.6], "peak RSS big mirror, MB": 31.25, "how": "python -X importtime"}
    text = run_report.render(numbers(cache_option=True, startup_rows=rows, big=False))
    assert "| import image_mirror, s | 0.500 (0.400-0.600) |" in text
    assert "| peak RSS big mirror, MB | 31.250 |" in text and "| how | python -X importtime |" in text
    assert "bench/startup.py's (above); run.py did not measure it again" in text
    assert "5000 MB image" not in text


def test_the_startup_table_shows_each_module_over_ping_without_rss_when_asked():
    result = {"rounds": 3, "load": ["then"], "direct": {"ping": (0.5, 0.49, 33.0), "image_mirror": (1.1, 1.08, 34.0),
                                                        "image_pull": (1.2, 1.2, 34.1), "image_push": (1.3, 1.3, 34.2)},
              "playbook": {"ping": 2.4, "image_mirror": 3.3}, "rss": {"4": 35.2, "5000": 38.6}}
    lines = startup.table(result, rss_columns=False)
    assert "| image_mirror | 1100 | 1080 | 600 | 590 |" in lines and "| difference | 0.90 |" in lines
    assert "| 5000 MB minus 4 MB | 3.4 |" in lines  # sizes saved as JSON keys (text) still sort and subtract
    assert "| image_push | 1300 | 1300 | 800 | 810 | 34.2 | 1.2 |" in startup.table(result)

"""bench/run.py's block of RESULTS.md, from the numbers a run measured (the dict it saves in results.json).

table_rows() turns the per-round series into the rows both the table and the chart (bench/chart.py)
show: time rows (ours and skopeo per round, a target ratio) and memory rows (MB). Pure: no I/O.
"""

import statistics

BEGIN, END = "<!-- bench rows: bench/run.py -->", "<!-- end of bench rows -->"
NOT_AVAILABLE = "n/a (option not available)"


def spread(values):
    """median, min, max"""
    return statistics.median(values), min(values), max(values)


def _time(label, ours, skopeo, target, missing=None):
    return {"measure": label, "ours": ours or None, "skopeo": skopeo, "target": target, "missing": missing}


def table_rows(numbers):
    """(time rows, memory rows) of a run, in table order."""
    series, once = numbers["series"], numbers["once"]
    missing = None if numbers["cache_option"] else NOT_AVAILABLE
    times = [
        _time("cold mirror, one pass, through ansible-playbook (`image_mirror` task against `skopeo copy` in a"
              " `command` task)", series["ours_list_play"], series["skopeo_task_play"], "<= 0.9"),
        _time("cold mirror, one pass, module process (`image_mirror`, empty cache) against the skopeo CLI",
              series["ours_module"], series["skopeo_mirror"], "<= 0.85"),
        _time("cold mirror, one pass, module process with `cache: false` against the skopeo CLI",
              series["ours_nocache"], series["skopeo_mirror"], "<= 0.8", missing),
        _time("cold mirror, one pass (`image_push source=`, empty cache)", series["ours_push_source"],
              series["skopeo_mirror"], "<= 1.0"),
        _time("cold mirror, two tasks (`image_pull` then `image_push`)", series["ours_pull_push"],
              series["skopeo_mirror"], ""),
        _time("pull alone", series["ours_pull"], series["skopeo_pull"], "<= 0.8"),
    ]
    memory = [
        {"measure": "peak RSS (any of the runs above), MB", "ours": max(series["ours_rss"]),
         "skopeo": max(series["skopeo_rss"]), "target": "<= 64"},
        {"measure": "peak RSS of a pull, %d MB image minus 5 MB image, MB" % numbers["size_mb"],
         "ours": max(series["ours_pull_rss"]) - once["small_pull_rss"], "skopeo": None, "target": "<= 8"},
    ]
    if "big_mirror_rss" in once:
        memory += [
            {"measure": "peak RSS of the module process, one-pass mirror of a %d MB image, MB" % numbers["big_mb"],
             "ours": once["big_mirror_rss"], "skopeo": None, "target": "<= 40"},
            {"measure": "the same, %d MB image minus 4 MB image, MB" % numbers["big_mb"],
             "ours": once["big_mirror_rss"] - once["tiny_mirror_rss"], "skopeo": None, "target": "<= 4"},
        ]
    return times, memory


def _cell(values):
    return "%.2f (%.2f-%.2f)" % spread(values)


def _time_line(row):
    if row["ours"] is None:
        return "| %s | %s | %s | n/a | %s |" % (row["measure"], row["missing"], _cell(row["skopeo"]), row["target"])
    ratio = statistics.median(row["ours"]) / statistics.median(row["skopeo"])
    return "| %s | %s | %s | %.2f | %s |" % (row["measure"], _cell(row["ours"]), _cell(row["skopeo"]), ratio, row["target"])


def _memory_line(row):
    skopeo = "" if row["skopeo"] is None else "%.1f" % row["skopeo"]
    return "| %s | %.1f | %s | | %s |" % (row["measure"], row["ours"], skopeo, row["target"])


def _median(values, form="%.2f"):
    return form % statistics.median(values) if values else "n/a"


def _value(value):
    """A start-up value, whatever bench/startup.py returns: numbers, lists of rounds, dicts, text."""
    if isinstance(value, float):
        return "%.3f" % value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float)) for v in value):
        return "%.3f (%.3f-%.3f)" % spread(value)
    if isinstance(value, dict):
        return ", ".join("%s: %s" % (key, _value(item)) for key, item in value.items())
    return str(value)


def _startup_lines(start, once):
    if start["rows"] is None:
        return [start["note"] + "."]
    if start.get("lines"):
        lines = ["Start-up (bench/startup.py): the module's own start-up against `ansible.builtin.ping`'s (target: <= 0.15 s"
                 " more).", ""] + list(start["lines"])
    else:
        lines = ["| start-up (bench/startup.py) | value |", "| --- | --- |"]
        lines += ["| %s | %s |" % (key, _value(value)) for key, value in start["rows"].items()]
    if start["covers_big_rss"]:
        lines += ["", "The big-image peak RSS is bench/startup.py's (above); run.py did not measure it again."]
    elif "big_mirror_rss" in once:
        lines += ["", "The big-image peak RSS is run.py's (memory rows above); bench/startup.py's rows do not name one."]
    return lines


def _prose(numbers):
    series, once = numbers["series"], numbers["once"]
    floor, om, sm = spread(series["ansible_floor"]), spread(series["ours_push_source"]), spread(series["skopeo_mirror"])
    op, sp = spread(series["ours_pull"]), spread(series["skopeo_pull"])
    nocache = "`cache: false`: %s" % NOT_AVAILABLE
    if numbers["cache_option"]:
        nocache = ("`cache: false` %s s CPU, %s requests, %s syscalls, %d bytes on disk under its HOME and cache"
                   " (largest of the rounds)" % (_median(series["ours_nocache_cpu"]),
                                                 _median(series["ours_nocache_requests"], "%d"),
                                                 _median(series.get("ours_nocache_syscalls"), "%d"),
                                                 max(series["ours_nocache_disk"])))
    lines = [
        "Module process against the skopeo CLI, medians: `image_mirror` %s s CPU, %s requests reaching the two"
        " registries and %s read/write syscalls; %s; skopeo %s s CPU, %s requests, %s syscalls."
        % (_median(series["ours_module_cpu"]), _median(series["ours_module_requests"], "%d"),
           _median(series.get("ours_module_syscalls"), "%d"), nocache, _median(series["skopeo_mirror_cpu"]),
           _median(series["skopeo_mirror_requests"], "%d"), _median(series.get("skopeo_mirror_syscalls"), "%d")),
        "",
        "Ansible alone, the same play running `ansible.builtin.ping`: %.2f (%.2f-%.2f) s. Taken off our"
        " times, that leaves the module's own work (its start-up included): the mirror (`image_push source=`)"
        " %.2f s (%.2f of skopeo), the pull %.2f s (%.2f of skopeo)."
        % (floor + (om[0] - floor[0], (om[0] - floor[0]) / sm[0], op[0] - floor[0], (op[0] - floor[0]) / sp[0])),
        "",
        "Warm re-run of the mirror (target current): %.2f s; requests reaching the registries: %s;"
        " blob bytes: %d." % (once["warm_s"], ", ".join(once["warm_requests"]) or "none", once["warm_blob_bytes"]),
        "",
        "Scale: the mirror_images role over %d small images, warm: %.2f s, %d requests in all; an empty"
        " role run costs %.2f s, so %.3f s per image (cold: %.2f s)."
        % (numbers["images"], once["role_warm_s"], once["role_requests"], once["role_empty_s"],
           (once["role_warm_s"] - once["role_empty_s"]) / numbers["images"], once["role_cold_s"]),
    ]
    return lines


def render(numbers):
    """The block between BEGIN and END (markers included)."""
    times, memory = table_rows(numbers)
    lines = [
        BEGIN,
        "# Benchmark: imagepusher.registry against skopeo",
        "",
        "Same machine, same run, alternating (`make bench`; %s; the run took %.1f min, load average %s at its"
        " start and %s at its end). Image: %d MB in %d incompressible layers, two loopback Distribution 2.8"
        " registries. Times are wall clock in seconds, median (min-max) of %d rounds; through `ansible-playbook`"
        " (Ansible start-up included) unless the row says module process. Chart: [results.svg](results.svg)."
        % (numbers["date"], numbers["took_s"] / 60, numbers["load_start"], numbers["load_end"], numbers["size_mb"],
           numbers["layers"], numbers["rounds"]),
        "",
        "| measure | ours | skopeo | ratio ours/skopeo | target |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [_time_line(row) for row in times] + [_memory_line(row) for row in memory]
    lines += [""] + _prose(numbers) + [""] + _startup_lines(numbers["startup"], numbers["once"]) + [END]
    return "\n".join(lines)

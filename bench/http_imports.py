"""Import cost of the HTTP layer, in a process that has already imported ansible.module_utils.basic (as a module has).

    .venv/bin/python bench/http_imports.py [--rounds 8]

For requests (through _requests_lib, as the modules import it), _http.py, and http.client + ssl alone
(the floor any HTTPS client pays): CPU seconds, wall time and RSS growth of the import, each in a fresh
process, the variants alternating; medians and the load average are printed.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.ansible import make_collections_dir  # noqa: E402 pylint: disable=wrong-import-position

PACKAGE = "ansible_collections.imagepusher.registry.plugins.module_utils"
CODE = """
import resource, time, ansible.module_utils.basic, %s
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
def rss():
    return int([line for line in open('/proc/self/status') if line.startswith('VmRSS')][0].split()[1])
rss0, cpu0, wall0 = rss(), cpu(), time.perf_counter()
import %s
print(cpu() - cpu0, time.perf_counter() - wall0, rss() - rss0)
"""
VARIANTS = {
    "requests (via _requests_lib)": PACKAGE + "._requests_lib",
    "_http": PACKAGE + "._http",
    "http.client + ssl": "http.client, ssl",
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=8)
    rounds = parser.parse_args().rounds
    collections = make_collections_dir(tempfile.mkdtemp(prefix="imagepusher-imports-"))
    env = dict(os.environ, PYTHONPATH=str(collections))
    results = {name: [] for name in VARIANTS}
    for round_ in range(rounds):
        for name in (list(VARIANTS) if round_ % 2 == 0 else list(reversed(list(VARIANTS)))):
            out = subprocess.run([sys.executable, "-c", CODE % (PACKAGE, VARIANTS[name])], capture_output=True,
                                 text=True, env=env, check=True).stdout.split()
            results[name].append(tuple(float(x) for x in out))
    print("load average %.2f %.2f %.2f" % os.getloadavg())
    for name, values in results.items():
        print("%-30s CPU %.1f ms  wall %.1f ms  RSS +%.1f MB (median of %d)" % (
            name, statistics.median(v[0] for v in values) * 1000, statistics.median(v[1] for v in values) * 1000,
            statistics.median(v[2] for v in values) / 1024, len(values)))


if __name__ == "__main__":
    main()

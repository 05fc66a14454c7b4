"""CPU per request of the HTTP layer: requests (IMAGEPUSHER_HTTP=requests) against _http.py (the default).

    .venv/bin/python bench/http_layer.py [--n 300] [--rounds 3]

Against one real loopback registry (tests/support/registry.py), through Transport.request as the
modules call it (retries, rate limits, deadline watchdog included), in one thread: CPU seconds of
that thread (RUSAGE_THREAD) per request, for HEAD /v2/, GET of a 2-byte body, and a small blob
upload (POST + PUT of 1 KiB, counted as two requests). The two layers alternate, A B B A...,
each round after a warm-up; medians are printed with the load average. Bare requests.Session and
http.client numbers are printed too, for the floor.
"""

import argparse
import hashlib
import http.client
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.ansible import make_collections_dir  # noqa: E402 pylint: disable=wrong-import-position
from tests.support.registry import Registry  # noqa: E402 pylint: disable=wrong-import-position

sys.path.insert(1, str(make_collections_dir(tempfile.mkdtemp(prefix="imagepusher-bench-"))))

from ansible_collections.imagepusher.registry.plugins.module_utils import _transport  # noqa: E402 pylint: disable=wrong-import-position

BLOB = b"b" * 1024
DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()


def thread_cpu():
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return usage.ru_utime + usage.ru_stime


def transport(layer):
    os.environ["IMAGEPUSHER_HTTP"] = layer  # "client" (the default) or "requests"
    return _transport.Transport(timeout=30, retries=0)


def operations(registry, client):
    base = registry.url

    def head():
        client.request("HEAD", base + "/v2/", "bench").close()

    def get():
        client.request("GET", base + "/v2/", "bench").close()

    def upload():
        response = client.request("POST", base + "/v2/bench/blobs/uploads/", "bench")
        response.close()
        location = response.headers["Location"]
        location = location if location.startswith("http") else base + location
        sep = "&" if "?" in location else "?"
        client.request("PUT", location + sep + "digest=" + DIGEST, "bench", data=BLOB,
                       headers={"Content-Type": "application/octet-stream"}).close()

    return {"HEAD": (head, 1), "GET-small": (get, 1), "upload POST+PUT": (upload, 2)}


def measure(fn, requests_each, n):
    for _round in range(20):
        fn()
    cpu0, wall0 = thread_cpu(), time.monotonic()
    for _round in range(n):
        fn()
    count = n * requests_each
    return (thread_cpu() - cpu0) * 1000 / count, (time.monotonic() - wall0) * 1000 / count


def floor(registry, n):
    """Bare requests.Session and bare http.client, HEAD /v2/: what the layers cost at the least."""
    import requests
    host, port = registry.host.split(":")
    session = requests.Session()
    connection = http.client.HTTPConnection(host, int(port))

    def bare_client():
        connection.request("HEAD", "/v2/")
        connection.getresponse().read()
    return {"bare requests.Session HEAD": measure(lambda: session.head(registry.url + "/v2/").close(), 1, n),
            "bare http.client HEAD": measure(bare_client, 1, n)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results = {}
    with Registry() as registry:
        for round_ in range(args.rounds):
            for layer in (("requests", "client") if round_ % 2 == 0 else ("client", "requests")):
                client = transport(layer)
                for name, (fn, each) in operations(registry, client).items():
                    results.setdefault((name, layer), []).append(measure(fn, each, args.n))
                client.close()
        for name, value in floor(registry, args.n).items():
            results[(name, "-")] = [value]
    print("load average %.2f %.2f %.2f" % os.getloadavg())
    print("%-28s %-9s %14s %14s" % ("operation", "layer", "CPU ms/req", "wall ms/req"))
    for (name, layer), values in results.items():
        cpu = statistics.median(v[0] for v in values)
        wall = statistics.median(v[1] for v in values)
        print("%-28s %-9s %14.3f %14.3f   cpu rounds: %s" % (name, layer, cpu, wall, " ".join("%.3f" % v[0] for v in values)))


if __name__ == "__main__":
    main()

"""What resumable pieces cost: a push of big blobs in RESUMABLE_CHUNK pieces against one PATCH each.

    .venv/bin/python bench/push_pieces.py [ROUNDS] [SIZE_MB]

Why: Distribution 2.8 keeps an upload session across a killed run only up to the last PATCH
it acknowledged (a PATCH cut mid-body invalidates the session), so a push from the cache
sends a big blob in pieces, saving the session after each. Each piece is one more request
and one more wait for the registry's answer. Both variants push the same image from the same
cache to a fresh registry, as a module process (Ansible left out: it costs both the same),
the order alternating by round, each from the same memory state (run.py's settle()).
"""

import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import run as bench  # noqa: E402
from module_run import run_module  # noqa: E402
from tests.support import images  # noqa: E402
from tests.support.registry import Registry  # noqa: E402

NAME = "127.0.0.1:5999/bench/big:v1"
UPLOAD = Path("plugins") / "module_utils" / "_upload.py"


def collection(work, name, whole):
    """A copy of this tree's plugins; `whole`: pieces larger than any blob, so one PATCH per blob."""
    root = Path(work) / ("collections-" + name)
    plugins = root / "ansible_collections" / "imagepusher" / "registry" / "plugins"
    shutil.copytree(REPO / "plugins", plugins)
    if whole:
        path = plugins.parent / UPLOAD
        text = path.read_text()
        assert "RESUMABLE_CHUNK = 128 * 1024 * 1024" in text
        path.write_text(text.replace("RESUMABLE_CHUNK = 128 * 1024 * 1024", "RESUMABLE_CHUNK = 1 << 62"))
    return root


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    size_mb = int(sys.argv[2]) if len(sys.argv) > 2 else 1400
    with tempfile.TemporaryDirectory(dir=str(REPO.parent)) as work:
        bench.WARM["mb"] = int(1.5 * size_mb)
        layers = [images.random_layer(size_mb / 6.0, seed=1000 + i, name="data/%d.bin" % i) for i in range(6)]
        cache = images.write_oci_layout(Path(work) / "cache", {NAME: images.build_image(layers)})
        del layers
        roots = {"pieces": collection(work, "pieces", False), "whole": collection(work, "whole", True)}
        results = {"pieces": [], "whole": []}
        for number in range(rounds):
            for name in (["pieces", "whole"] if number % 2 == 0 else ["whole", "pieces"]):
                with Registry() as target:
                    args = {"name": NAME, "target": "%s/bench/big:v1" % target.host, "cache_dir": str(cache)}
                    results[name].append(run_module(roots[name], args, work)[:2])
                print("round %d %s: wall %.2f s, cpu %.2f s" % ((number + 1, name) + results[name][-1]), flush=True)
        for name, values in results.items():
            wall, cpu = bench.summary([v[0] for v in values]), bench.summary([v[1] for v in values])
            print("%s: wall median %.2f s (%.2f-%.2f), cpu median %.2f s" % ((name,) + wall + cpu[:1]))


if __name__ == "__main__":
    main()

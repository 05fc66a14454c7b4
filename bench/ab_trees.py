"""A/B of two checkouts: the one-pass mirror (image_push source=) run as a module process, alternating.

    .venv/bin/python bench/ab_trees.py OLD_TREE NEW_TREE [ROUNDS]

For a change that must not make transfers slower (a refactor): both trees run the same
module on the same image, one after the other, the order alternating by round, each from
the same memory state (run.py's settle()). Ansible is left out (it costs both the same and
adds a second of noise); wall time and the module's CPU seconds are reported, medians.
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
from tests.support.registry import Registry  # noqa: E402


def collection(tree, work, name):
    root = Path(work) / ("collections-" + name)
    shutil.copytree(Path(tree) / "plugins", root / "ansible_collections" / "imagepusher" / "registry" / "plugins")
    return root


def main():
    trees = {"old": sys.argv[1], "new": sys.argv[2]}
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    with tempfile.TemporaryDirectory(dir=str(REPO.parent)) as work:
        bench.WARM["mb"] = int(1.5 * 1400)
        _image, layout = bench.build_image(1400, 6, work)
        roots = dict((name, collection(tree, work, name)) for name, tree in trees.items())
        results = {"old": [], "new": []}
        with Registry() as source:
            bench.seed_layout(layout, source, "bench/big")
            for number in range(rounds):
                for name in (["old", "new"] if number % 2 == 0 else ["new", "old"]):
                    cache = Path(work) / "cache"
                    with Registry() as target:
                        args = {"source": "%s/bench/big:latest" % source.host, "target": "%s/ab/x:v1" % target.host,
                                "cache_dir": str(cache)}
                        results[name].append(run_module(roots[name], args, work)[:2])
                    shutil.rmtree(str(cache))
                    print("round %d %s: wall %.2f s, cpu %.2f s" % ((number + 1, name) + results[name][-1]), flush=True)
        for name, values in results.items():
            wall, cpu = bench.summary([v[0] for v in values])[0], bench.summary([v[1] for v in values])[0]
            print("%s: median wall %.2f s, cpu %.2f s" % (name, wall, cpu))


if __name__ == "__main__":
    main()

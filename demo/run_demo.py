#!/usr/bin/env python
"""`make demo`: a local mirror between two loopback registries, end to end.

Starts two Distribution registries on free loopback ports, builds a 3-platform sample
image as an OCI layout, publishes it to the first with image_push, mirrors it into the
second with the mirror_images role, runs the role again to show that nothing changes,
prints the source and target digests side by side (read by skopeo, not by us), and
stops the registries.
"""

import hashlib
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support import images  # noqa: E402
from tests.support.ansible import AnsibleWorkspace  # noqa: E402
from tests.support.registry import Registry  # noqa: E402

DEMO = REPO / "demo"


def banner(text):
    print("\n" + "=" * 78 + "\n" + text + "\n" + "=" * 78, flush=True)


def run(ws, playbook, extra_vars):
    result = ws.run_playbook(str(DEMO / playbook), extra_vars)
    print(result.stdout, flush=True)
    if result.rc != 0:
        print(result.stderr, file=sys.stderr)
        raise SystemExit("demo: %s failed (rc=%d)" % (playbook, result.rc))
    return result


def recap_changed(stdout):
    match = re.search(r"localhost\s+:\s+ok=\d+\s+changed=(\d+)", stdout)
    return int(match.group(1)) if match else None


def registry_digest(reference):
    """Digest of the manifest a registry serves, computed by us from skopeo's raw bytes."""
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", "docker://" + reference],
                         check=True, capture_output=True).stdout
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def main():
    with tempfile.TemporaryDirectory(prefix="imagepusher-demo-") as work, \
            Registry() as source, Registry() as target, AnsibleWorkspace(Path(work) / "ansible") as ws:
        banner("Registries: source %s, target %s (loopback, ports picked now)" % (source.host, target.host))
        sample = images.multi_arch_index()
        layout = images.write_oci_layout(Path(work) / "sample-oci", {"demo/app:1.0": sample})
        extra = {"demo_source": source.host, "demo_target": target.host,
                 "demo_layout": str(layout), "demo_cache": str(Path(work) / "cache")}

        banner("1. Publish a 3-platform sample image (OCI layout) to the source with image_push")
        run(ws, "push_sample.yml", extra)

        banner("2. Mirror it into the target with the mirror_images role")
        first = run(ws, "mirror.yml", extra)

        banner("3. Run the role again: nothing to do")
        second = run(ws, "mirror.yml", extra)
        changed = recap_changed(second.stdout)

        banner("4. Digests as the registries serve them (read by skopeo)")
        amd64 = sample.image_for("amd64").digest
        pairs = [("%s/demo/app:1.0" % source.host, "%s/mirror/app:1.0" % target.host),
                 ("%s/demo/app@%s" % (source.host, amd64), "%s/mirror/app-amd64:1.0" % target.host)]
        width = max(len(a) for pair in pairs for a in pair)
        print("%-*s  %s" % (width, "image", "digest served"))
        for src, dst in pairs:
            print("%-*s  %s" % (width, src, registry_digest(src)))
            print("%-*s  %s\n" % (width, dst, registry_digest(dst)))
        print("The full mirror keeps the 3-platform index digest; the linux/amd64-only mirror is that\n"
              "platform's own manifest from the source index, digest unchanged too.")
        print("\nFirst mirror run: changed=%s; second run: changed=%s" % (recap_changed(first.stdout), changed))
        if changed != 0:
            raise SystemExit("demo: the second run changed something (changed=%s)" % changed)
        for src, dst in pairs:
            if registry_digest(src) != registry_digest(dst):
                raise SystemExit("demo: %s differs from %s" % (dst, src))
        banner("Done: registries stopped, temporary files removed.")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()

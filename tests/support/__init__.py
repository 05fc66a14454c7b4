"""Test support for imagepusher.registry: things the tests need that are not the product.

- registry.py        start a real Distribution registry (Debian's docker-registry) per test/session
- images.py          build deterministic OCI / Docker v2 images and indexes in memory
- seed.py            push images into a registry with plain `requests` (independent of our client)
- throttle_proxy.py  a loopback TCP proxy that slows downstream bytes (to kill a pull mid-blob)
- ansible.py         run real ansible-playbook against this work tree's collection

Import as ``from tests.support import images`` (the root conftest.py puts the repo root on
sys.path; there is deliberately no tests/__init__.py).
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

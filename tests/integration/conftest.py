"""Fixtures for tests against a real registry.

registry        session-wide Registry, seeded once with the four samples below
samples         {name: Sample} for the seeded images (objects + references) to compare digests
fresh_registry  an empty Registry for one test (pushes, deletes, auth configs...)
ansible         an AnsibleWorkspace for one test (see tests/support/ansible.py)
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass

import pytest

from tests.support import images, seed, target_seeds
from tests.support.ansible import AnsibleWorkspace
from tests.support.registry import Registry

# name -> (repository, tag, builder); the builders return cached, identical objects
SAMPLES = target_seeds.SAMPLES  # shared with ansible-test's setup_registry target


@dataclass(frozen=True)
class Sample:
    name: str
    repo: str  # e.g. test/multi
    tag: str
    obj: images.Image | images.Index  # .digest, .manifest, .blobs, ...
    host: str  # 127.0.0.1:PORT of the seeded registry

    @property
    def ref(self) -> str:
        """127.0.0.1:PORT/test/multi:v1"""
        return f"{self.host}/{self.repo}:{self.tag}"

    @property
    def digest_ref(self) -> str:
        """127.0.0.1:PORT/test/multi@sha256:..."""
        return f"{self.host}/{self.repo}@{self.obj.digest}"

    @property
    def digest(self) -> str:
        return self.obj.digest


def _require(binary: str) -> None:
    if shutil.which(binary) is None:
        pytest.fail(f"{binary} not found: run `make deps` (installs docker-registry and skopeo)",
                    pytrace=False)


@pytest.fixture(scope="session")
def registry():
    """One registry for the whole run, seeded with SAMPLES. Treat it as read-only: tests
    that write use ``fresh_registry`` (or a repository name of their own)."""
    _require("docker-registry")
    with Registry() as reg:
        for repo, tag, build in SAMPLES.values():
            seed.push(reg.url, repo, build(), tag)
        yield reg


@pytest.fixture(scope="session")
def samples(registry) -> dict[str, Sample]:
    return {name: Sample(name, repo, tag, build(), registry.host)
            for name, (repo, tag, build) in SAMPLES.items()}


@pytest.fixture
def fresh_registry():
    _require("docker-registry")
    with Registry() as reg:
        yield reg


@pytest.fixture
def ansible(tmp_path):
    """A per-test AnsibleWorkspace (own HOME, so the default cache dir is per test too)."""
    ws = AnsibleWorkspace(tmp_path / "ansible")
    yield ws
    ws.cleanup()

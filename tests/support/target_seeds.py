"""What each integration target expects in its registry, shared by both drivers of the target.

The pytest driver (tests/integration/test_<target>.py) and ansible-test's setup_registry target
(tests/support/setup_registry.py) seed the same images from here, so a target's task files see
the same repositories and digests whichever driver runs them.
"""

from __future__ import annotations

from tests.support import images

# name -> (repository, tag, builder) of the images every seeded registry holds (conftest's `registry`)
SAMPLES = {
    "oci_single": ("test/oci-single", "v1", images.oci_single),
    "docker_v2": ("test/docker-v2", "v1", images.docker_v2),
    "multi": ("test/multi", "v1", images.multi_arch_index),
    "large": ("test/large", "v1", images.large_image),
}

# image_pull: an image tagged `latest` only, and a Docker manifest list
LATEST_REPO = "test/image-pull-latest"
DOCKER_LIST_REPO = "test/image-pull-docker-list"


def latest_image() -> images.Image:
    return images.build_image([images.tar_layer({"imagepusher/latest.txt": b"tagged latest only\n"})],
                              labels={"sample": "image-pull-latest"})


def docker_list() -> images.Index:
    """A Docker manifest list (Docker media types throughout) of the 3 multi platforms."""
    shared = images.tar_layer({"imagepusher/docker-list/shared.txt": b"shared\n" * 64}, fmt="docker")
    return images.build_index(
        [images.build_image([shared, images.tar_layer({"own.txt": repr(p).encode()}, fmt="docker")],
                            fmt="docker", platform=p) for p in images.MULTI_PLATFORMS],
        fmt="docker")

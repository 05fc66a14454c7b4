# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The role mirror_images passes every registry option through, and its three files agree.

defaults/main.yml, meta/argument_specs.yml and tasks/main.yml are read as data: every role
variable has a default and a spec (with the same default), and each module task sets every
option of the modules' shared registry and cache argument specs from a role variable, so an
option added to the modules without the role following fails here. The role's behaviour
against real registries is tested in tests/integration/test_mirror_images_role*.py.
"""

import re
from pathlib import Path

import pytest
import yaml

from ansible_collections.imagepusher.registry.plugins.module_utils._module import (
    cache_argument_spec,
    registry_argument_spec,
)

ROLE = Path(__file__).resolve().parents[2] / "roles" / "mirror_images"
MODULES = {"pull": "imagepusher.registry.image_pull", "push": "imagepusher.registry.image_push"}


def load(relative):
    return yaml.safe_load((ROLE / relative).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def defaults():
    return load("defaults/main.yml")


@pytest.fixture(scope="module")
def spec():
    return load("meta/argument_specs.yml")["argument_specs"]["main"]["options"]


@pytest.fixture(scope="module")
def tasks():
    found = {}
    for task in load("tasks/main.yml"):
        for key, module in MODULES.items():
            if module in task:
                found[key] = task[module]
    assert set(found) == set(MODULES), "tasks/main.yml must call image_pull and image_push"
    return found


def test_every_default_has_a_spec_and_the_same_default(defaults, spec):
    assert set(defaults) == set(spec), (set(defaults) ^ set(spec))
    for name, option in spec.items():
        if "default" in option:
            assert defaults[name] == option["default"], name
        elif not option.get("required"):
            assert defaults[name] is None, "%s: the spec has no default, so defaults/main.yml must say null" % name


@pytest.mark.parametrize("step", sorted(MODULES))
def test_each_module_task_sets_every_registry_and_cache_option(tasks, step):
    wanted = set(registry_argument_spec()) | set(cache_argument_spec())
    missing = wanted - set(tasks[step])
    assert not missing, "the %s task does not pass %s" % (step, sorted(missing))


@pytest.mark.parametrize("step", sorted(MODULES))
def test_options_come_from_role_variables(tasks, spec, step):
    entry_options = set(spec["mirror_images_list"]["options"])
    for option, value in tasks[step].items():
        if option in ("name", "target"):
            continue
        names = set(re.findall(r"\b(mirror_images_[a-z_]+)\b", str(value)))
        item_keys = set(re.findall(r"\bitem(?:\.1)?\.([a-z_]+)\b", str(value)))
        assert names, "%s: %s is not set from a role variable" % (step, option)
        assert names <= set(spec) | {"mirror_images_pulled"}, (option, names - set(spec))
        assert item_keys <= entry_options, (option, item_keys - entry_options)


def test_new_options_are_documented(spec):
    for name in ("mirror_images_auth_file", "mirror_images_plain_http", "mirror_images_client_cert",
                 "mirror_images_client_key"):
        assert spec[name]["description"], name
    entry = spec["mirror_images_list"]["options"]
    assert entry["source_plain_http"]["type"] == entry["target_plain_http"]["type"] == "bool"

# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The role mirror_images passes every registry option through, and its three files agree.

defaults/main.yml, meta/argument_specs.yml and tasks/main.yml are read as data: every role
variable has a default and a spec (with the same default); the role mirrors with ONE
image_push task in one-pass mode (``source:``), looped over the list, which sets every option
of the modules' shared registry and cache argument specs, and the source side's own options,
from a role variable, so an option added to the modules without the role following fails
here; nothing else loops per image; the summary copies only what image_push returns with
``source:``. The role's behaviour against real registries is tested in
tests/integration/test_mirror_images_role*.py.
"""

import ast
import re
from pathlib import Path

import pytest
import yaml

from ansible_collections.imagepusher.registry.plugins.module_utils._module import (
    cache_argument_spec,
    registry_argument_spec,
)

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "mirror_images"
PUSH = "imagepusher.registry.image_push"
PULL = "imagepusher.registry.image_pull"
# image_push options of the one-pass mirror that the role sets besides the shared specs
SOURCE_OPTIONS = {"source", "target", "platforms", "source_username", "source_password", "source_plain_http"}
LOOP_KEYWORDS = ("loop", "with_items", "with_list", "with_dict", "with_together", "with_nested", "with_subelements")
SUMMARY_KEYS = {"source", "target", "digest", "pulled", "pushed", "bytes_downloaded", "bytes_uploaded"}


def load(relative):
    return yaml.safe_load((ROLE / relative).read_text(encoding="utf-8"))


def module_return(name):
    """The RETURN documentation of a module, read without importing it."""
    tree = ast.parse((REPO / "plugins" / "modules" / ("%s.py" % name)).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets if isinstance(t, ast.Name)] == ["RETURN"]:
            return yaml.safe_load(node.value.value)
    raise AssertionError("%s has no RETURN" % name)


@pytest.fixture(scope="module")
def defaults():
    return load("defaults/main.yml")


@pytest.fixture(scope="module")
def spec():
    return load("meta/argument_specs.yml")["argument_specs"]["main"]["options"]


@pytest.fixture(scope="module")
def role_tasks():
    return load("tasks/main.yml")


@pytest.fixture(scope="module")
def mirror_task(role_tasks):
    found = [task for task in role_tasks if PUSH in task]
    assert len(found) == 1, "tasks/main.yml must mirror with exactly one image_push task"
    return found[0]


@pytest.fixture(scope="module")
def summary_task(role_tasks):
    found = [task for task in role_tasks if "mirror_images_results" in (task.get("ansible.builtin.set_fact") or {})]
    assert len(found) == 1, "tasks/main.yml must set mirror_images_results with one set_fact task"
    return found[0]


def test_every_default_has_a_spec_and_the_same_default(defaults, spec):
    assert set(defaults) == set(spec), (set(defaults) ^ set(spec))
    for name, option in spec.items():
        if "default" in option:
            assert defaults[name] == option["default"], name
        elif not option.get("required"):
            assert defaults[name] is None, "%s: the spec has no default, so defaults/main.yml must say null" % name


def test_one_image_push_per_image_in_one_pass_mode(role_tasks, mirror_task):
    assert not [task for task in role_tasks if PULL in task], "the role must not pull separately any more"
    args = mirror_task[PUSH]
    assert args["source"] == "{{ item.source }}" and args["target"] == "{{ item.target }}"
    assert "name" not in args and "layout" not in args
    assert mirror_task["loop"] == "{{ mirror_images_list }}"
    assert mirror_task["register"] == "mirror_images_mirrored"


def test_nothing_else_loops_per_image(role_tasks, mirror_task):
    looping = [task.get("name") for task in role_tasks if task is not mirror_task
               and any(key in task for key in LOOP_KEYWORDS)]
    assert looping == [], "only the image_push task may loop over the images: %s" % looping


def test_the_mirror_task_sets_every_registry_cache_and_source_option(mirror_task):
    wanted = set(registry_argument_spec()) | set(cache_argument_spec()) | SOURCE_OPTIONS
    missing = wanted - set(mirror_task[PUSH])
    assert not missing, "the image_push task does not pass %s" % sorted(missing)


def test_options_come_from_role_variables(mirror_task, spec):
    entry_options = set(spec["mirror_images_list"]["options"])
    for option, value in mirror_task[PUSH].items():
        item_keys = set(re.findall(r"\bitem\.([a-z_]+)\b", str(value)))
        assert item_keys <= entry_options, (option, item_keys - entry_options)
        if option in ("source", "target"):
            continue
        names = set(re.findall(r"\b(mirror_images_[a-z_]+)\b", str(value)))
        assert names, "%s is not set from a role variable" % option
        assert names <= set(spec), (option, names - set(spec))


@pytest.mark.parametrize("side, options", [
    ("source", ("source_username", "source_password", "source_plain_http")),
    ("target", ("username", "password", "plain_http")),
])
def test_entries_override_the_role_wide_settings_for_their_side(mirror_task, side, options):
    args = mirror_task[PUSH]
    for option, key in zip(options, ("username", "password", "plain_http")):
        entry = "%s_%s" % (side, key)
        role_wide = "mirror_images_plain_http" if key == "plain_http" else "mirror_images_%s_%s" % (side, key)
        assert re.fullmatch(r"\{\{ item\.%s \| default\(%s\) \}\}" % (entry, role_wide), args[option]), \
            (option, args[option])


def test_no_log_when_either_password_is_set(mirror_task):
    no_log = str(mirror_task["no_log"])
    for name in ("item.source_password", "mirror_images_source_password", "item.target_password",
                 "mirror_images_target_password"):
        assert name in no_log, "no_log does not look at %s: %s" % (name, no_log)


def test_summary_copies_only_what_image_push_returns_with_source(summary_task):
    returned = module_return("image_push")
    copied = summary_task["vars"]["mirror_images_copied_keys"]
    for key in copied:
        assert key in returned, "image_push does not return %s" % key
        assert returned[key]["returned"] in ("always", "when O(source) is set"), (key, returned[key]["returned"])
    derived = {"pulled", "pushed"}
    assert SUMMARY_KEYS <= set(copied) | derived, SUMMARY_KEYS - set(copied) - derived
    assert "bytes_downloaded" in summary_task["vars"]["mirror_images_pulled"]
    assert "'changed'" in summary_task["vars"]["mirror_images_pushed"]


def test_summary_keys_are_documented(spec):
    text = (ROLE / "README.md").read_text(encoding="utf-8")
    described = load("meta/argument_specs.yml")["argument_specs"]["main"]["description"]
    for key in SUMMARY_KEYS | {"cached", "cache_name"}:
        assert re.search(r"`%s`" % key, text), "roles/mirror_images/README.md does not explain %s" % key
        assert "C(%s)" % key in " ".join(described), "meta/argument_specs.yml does not list %s" % key
    assert spec["mirror_images_list"]["required"] is True


def test_new_options_are_documented(spec):
    for name in ("mirror_images_auth_file", "mirror_images_plain_http", "mirror_images_client_cert",
                 "mirror_images_client_key"):
        assert spec[name]["description"], name
    entry = spec["mirror_images_list"]["options"]
    assert entry["source_plain_http"]["type"] == entry["target_plain_http"]["type"] == "bool"

# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The role mirror_images passes every registry option through, and its three files agree.

defaults/main.yml, meta/argument_specs.yml and tasks/main.yml are read as data: every role
variable has a default and a spec (with the same default); the role mirrors the whole list with
ONE image_mirror task and no loop, which sets every module-wide option of image_mirror (its own
and the modules' shared registry and cache argument specs) from a role variable, so an option
added to the modules without the role following fails here; the role's entries have exactly the
module's per-image keys; nothing loops per image; the summary copies only what image_mirror
returns per image. The role's Jinja (the ``images`` it passes, its ``no_log``, the summary) is
rendered here by Ansible's own Templar. The role's behaviour against real registries is tested
in tests/integration/test_mirror_images_role*.py.
"""

import ast
import re
from pathlib import Path

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template


from ansible_collections.imagepusher.registry.plugins.filter import mirror_summary
from ansible_collections.imagepusher.registry.plugins.module_utils._module import (
    cache_argument_spec,
    registry_argument_spec,
)

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "mirror_images"
MIRROR = "imagepusher.registry.image_mirror"
MODULES = ("imagepusher.registry.image_pull", "imagepusher.registry.image_push")
LOOP_KEYWORDS = ("loop", "with_items", "with_list", "with_dict", "with_together", "with_nested", "with_subelements")
SUMMARY_KEYS = {"source", "target", "digest", "pulled", "pushed", "bytes_downloaded", "bytes_uploaded"}
# module-wide option -> the role variable it comes from (the rest: mirror_images_<option>)
RENAMED = {
    "username": "mirror_images_target_username",
    "password": "mirror_images_target_password",
    "plain_http": "mirror_images_plain_http",
    "source_plain_http": "mirror_images_plain_http",
}


def load(relative):
    return yaml.safe_load((ROLE / relative).read_text(encoding="utf-8"))


def module_doc(name, variable):
    """The DOCUMENTATION or RETURN of a module, read without importing it."""
    tree = ast.parse((REPO / "plugins" / "modules" / ("%s.py" % name)).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets if isinstance(t, ast.Name)] == [variable]:
            return yaml.safe_load(node.value.value)
    raise AssertionError("%s has no %s" % (name, variable))


def trusted(value):
    return trust_as_template(value) if isinstance(value, str) else value


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
    found = [task for task in role_tasks if MIRROR in task]
    assert len(found) == 1, "tasks/main.yml must mirror with exactly one image_mirror task"
    return found[0]


@pytest.fixture(scope="module")
def summary_task(role_tasks):
    found = [task for task in role_tasks if "mirror_images_results" in (task.get("ansible.builtin.set_fact") or {})]
    assert len(found) == 1, "tasks/main.yml must set mirror_images_results with one set_fact task"
    return found[0]


@pytest.fixture
def render(defaults, mirror_task, summary_task):
    """render(expression, **variables): the expression as Ansible templates it in the role, with the
    role's defaults, the task vars of both tasks and the given variables."""
    def rendering(expression, **variables):
        context = dict(defaults)
        for task in (mirror_task, summary_task):
            context.update((name, trusted(value)) for name, value in task.get("vars", {}).items())
        context.update(variables)
        return Templar(loader=DataLoader(), variables=context).template(trusted(expression))
    return rendering


def test_every_default_has_a_spec_and_the_same_default(defaults, spec):
    assert set(defaults) == set(spec), (set(defaults) ^ set(spec))
    for name, option in spec.items():
        if "default" in option:
            assert defaults[name] == option["default"], name
        elif not option.get("required"):
            assert defaults[name] is None, "%s: the spec has no default, so defaults/main.yml must say null" % name


def test_one_image_mirror_task_for_the_whole_list(role_tasks, mirror_task):
    assert not [task for task in role_tasks if any(module in task for module in MODULES)], \
        "the role must mirror with image_mirror only"
    assert not [key for key in LOOP_KEYWORDS if key in mirror_task], "the image_mirror task must not loop"
    assert "when" not in mirror_task, "an empty list goes to the module too (it then talks to no registry)"
    assert mirror_task["register"] == "mirror_images_mirrored"


def test_nothing_loops_per_image(role_tasks):
    looping = [task.get("name") for task in role_tasks if any(key in task for key in LOOP_KEYWORDS)]
    assert looping == [], "no task of the role may loop over the images: %s" % looping


def test_role_entries_have_the_modules_per_image_keys(spec):
    images = module_doc("image_mirror", "DOCUMENTATION")["options"]["images"]["suboptions"]
    entry = spec["mirror_images_list"]["options"]
    assert set(entry) == set(images)
    for key, option in images.items():
        assert (entry[key]["type"], entry[key].get("elements"), bool(entry[key].get("required"))) \
            == (option["type"], option.get("elements"), bool(option.get("required"))), key


def test_the_mirror_task_sets_every_module_wide_option(mirror_task):
    documented = set(module_doc("image_mirror", "DOCUMENTATION")["options"])
    wanted = set(registry_argument_spec()) | set(cache_argument_spec()) | documented
    args = mirror_task[MIRROR]
    assert set(args) == wanted, "the image_mirror task does not pass %s" % sorted(wanted - set(args))


def test_module_wide_options_come_from_role_variables(mirror_task, spec):
    for option, value in mirror_task[MIRROR].items():
        if option == "images":
            continue
        variable = RENAMED.get(option, "mirror_images_%s" % option)
        assert variable in spec, (option, variable)
        assert value == "{{ %s }}" % variable, (option, value)


@pytest.mark.parametrize("entry", [
    {"source": "src.example/app:1", "target": "dst.example/app"},
    {"source": "src.example/app:1", "target": "dst.example/app", "platforms": ["linux/amd64"],
     "source_plain_http": True, "target_plain_http": False},
    {"source": "src.example/app:1", "target": "dst.example/app", "source_username": "s", "source_password": "sp",
     "target_username": "t", "target_password": "tp"},
    {"source": "src.example/app:1", "target": "dst.example/app", "platforms": None, "target_plain_http": None},
], ids=["bare", "platforms-and-plain-http", "own-credentials", "explicit-nulls"])
def test_entries_pass_through_as_they_are(render, mirror_task, entry):
    """Keys an entry does not set (or sets to null) stay out, so the module-wide defaults apply; the
    others are its own."""
    images = render(mirror_task[MIRROR]["images"], mirror_images_list=[entry], mirror_images_source_username="ru",
                    mirror_images_source_password="rp", mirror_images_target_username="tu",
                    mirror_images_target_password="tp-role")
    assert images == [dict((key, value) for key, value in entry.items() if value is not None)]


def test_an_empty_list_passes_an_empty_list(render, mirror_task):
    assert render(mirror_task[MIRROR]["images"], mirror_images_list=[]) == []


@pytest.mark.parametrize("variables, hidden", [
    ({}, False),
    ({"mirror_images_list": [{"source": "a", "target": "b", "source_username": "u"}]}, False),
    ({"mirror_images_list": [{"source": "a", "target": "b", "source_password": None}]}, False),
    ({"mirror_images_source_password": "x"}, True),
    ({"mirror_images_target_password": "x"}, True),
    ({"mirror_images_list": [{"source": "a", "target": "b"}, {"source": "a", "target": "b", "source_password": "x"}]},
     True),
    ({"mirror_images_list": [{"source": "a", "target": "b"}, {"source": "a", "target": "b", "target_password": ""}]},
     True),
], ids=["nothing", "user-only", "null-password", "role-source", "role-target", "entry-source", "entry-target-empty"])
def test_no_log_when_any_password_is_set(render, mirror_task, variables, hidden):
    variables = dict({"mirror_images_list": [{"source": "a", "target": "b"}]}, **variables)
    assert render(mirror_task["no_log"], **variables) is hidden


def test_summary_copies_only_what_image_mirror_returns_per_image(summary_task):
    described = " ".join(module_doc("image_mirror", "RETURN")["images"]["description"])
    copied = mirror_summary.COPIED_KEYS
    for key in copied:
        assert "C(%s)" % key in described, "image_mirror does not return %s per image" % key
    derived = {"pulled", "pushed"}
    assert SUMMARY_KEYS <= set(copied) | derived, SUMMARY_KEYS - set(copied) - derived
    assert "imagepusher.registry.mirror_summary" in summary_task["ansible.builtin.set_fact"]["mirror_images_results"]
    assert "C(changed)" in described


def test_summary_from_the_registered_images(render, summary_task):
    image = {"source": "s:1", "target": "t:1", "digest": "sha256:1", "source_digest": "sha256:1",
             "media_type": "m", "platforms": [], "blobs": [], "manifests": [], "cache_name": "s:1", "cached": True,
             "retries": 0}
    registered = {"changed": True, "bytes_downloaded": 5, "bytes_uploaded": 5, "images": [
        dict(image, changed=True, bytes_downloaded=5, bytes_uploaded=5),
        dict(image, target="t:2", changed=True, bytes_downloaded=0, bytes_uploaded=0),
        dict(image, target="t:3", changed=False, bytes_downloaded=0, bytes_uploaded=0, cached=False),
    ]}
    summary = render(summary_task["ansible.builtin.set_fact"]["mirror_images_results"],
                     mirror_images_mirrored=registered)
    keep = ("source", "target", "digest", "cache_name", "cached", "bytes_downloaded", "bytes_uploaded")
    assert summary == [dict({k: i[k] for k in keep}, pulled=p, pushed=c) for i, p, c in
                       zip(registered["images"], (True, False, False), (True, True, False))]
    assert render(summary_task["ansible.builtin.set_fact"]["mirror_images_results"],
                  mirror_images_mirrored={"changed": False, "images": []}) == []


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

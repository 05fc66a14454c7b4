# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The AWX credential type of the README, and the execution-environment files, hold up.

- The two README snippets marked ``<!-- awx-credential-type: inputs|injectors -->`` parse as
  YAML and have the shape AWX accepts. Then they are rendered the way AWX renders a custom
  credential type (``awx/main/models/credential``: a sandboxed Jinja2 environment, inputs left
  empty are undefined, each ``file`` template written to its own file whose path is
  ``tower.filename.<name>``), and what they inject goes through the modules' own option
  handling (``env_fallback`` of the shared argument spec) and credential lookup.
- ``meta/execution-environment.yml`` is ansible-builder format 3 and names files that exist and
  hold what the modules import; ``examples/execution-environment.yml`` installs this collection.
"""

import base64
import json
import os
import re
import tempfile
from pathlib import Path

import pytest
import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.imagepusher.registry.plugins.module_utils import _credentials
from ansible_collections.imagepusher.registry.plugins.module_utils._module import registry_argument_spec

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
TARGET = "registry.example.com"
SOURCE = "docker.io"


def readme_snippet(marker):
    """The YAML of the fenced block right after ``<!-- awx-credential-type: <marker> -->``."""
    text = README.read_text(encoding="utf-8")
    found = re.findall(r"<!-- awx-credential-type: %s -->\s*```yaml\n(.*?)```" % re.escape(marker), text, re.S)
    assert len(found) == 1, "README.md needs exactly one yaml block after <!-- awx-credential-type: %s -->" % marker
    return yaml.safe_load(found[0])


@pytest.fixture(scope="module")
def inputs():
    return readme_snippet("inputs")


@pytest.fixture(scope="module")
def injectors():
    return readme_snippet("injectors")


class _Namespace(object):
    pass


def awx_inject(inputs, injectors, values, private_dir):
    """Environment variables a job gets from a credential with these input ``values``.

    Mirrors AWX's CredentialType.inject_credential for env and file injectors: a field whose
    value is empty is left out of the namespace (undefined in the templates); a boolean field
    left out defaults to false; each file template is rendered to a new file in private_dir.
    """
    sandbox = ImmutableSandboxedEnvironment()
    tower = _Namespace()
    namespace = {"tower": tower}
    for field in inputs["fields"]:
        value = values.get(field["id"])
        if field["type"] == "boolean":
            namespace[field["id"]] = bool(value)
        elif value:
            namespace[field["id"]] = value
    for label, template in injectors.get("file", {}).items():
        data = sandbox.from_string(template).render(**namespace)
        handle, path = tempfile.mkstemp(dir=private_dir)
        with os.fdopen(handle, "w") as stream:
            stream.write(data)
        if "." not in label:
            tower.filename = path
        else:
            if not hasattr(tower, "filename"):
                tower.filename = _Namespace()
            setattr(tower.filename, label.split(".", 1)[1], path)
    return {name: sandbox.from_string(template).render(**namespace)
            for name, template in injectors.get("env", {}).items()}


def module_credentials(env, registry, monkeypatch, home):
    """The Credentials a module would use for `registry` under the environment `env`: the
    options come from the real argument spec (env_fallback), then the credential lookup."""
    for name in ("IMAGEPUSHER_USERNAME", "IMAGEPUSHER_PASSWORD", "REGISTRY_AUTH_FILE", "DOCKER_CONFIG",
                 "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = ArgumentSpecValidator(registry_argument_spec()).validate({})
    assert not result.error_messages, result.error_messages
    params = result.validated_parameters
    return _credentials.resolve(registry, "team/app", username=params["username"], password=params["password"],
                                auth_file=params["auth_file"], environ=dict(os.environ), home=str(home))


def test_input_configuration_is_what_awx_accepts(inputs):
    assert set(inputs) <= {"fields", "required", "dependencies"}
    ids = [field["id"] for field in inputs["fields"]]
    assert len(ids) == len(set(ids)), ids
    for field in inputs["fields"]:
        assert set(field) <= {"id", "type", "label", "help_text", "secret", "multiline", "format", "choices",
                              "default", "ask_at_runtime"}, field
        assert re.match(r"^[a-zA-Z_][a-zA-Z0-9_]*$", field["id"]), field  # usable as a Jinja name
        assert field["type"] in ("string", "boolean") and field["label"], field
    secret = {field["id"] for field in inputs["fields"] if field.get("secret")}
    assert {"password", "auth_json"} <= secret, "the password and the auth file content must be secret"
    assert set(inputs.get("required", [])) <= set(ids)


def test_injector_configuration_is_what_awx_accepts(inputs, injectors):
    assert set(injectors) <= {"env", "file", "extra_vars"}
    for name in injectors["env"]:
        assert re.match(r"^[A-Z_][A-Z0-9_]*$", name) and not name.startswith("ANSIBLE_"), name
    for label in injectors["file"]:
        assert re.match(r"^template(\.[a-zA-Z_][a-zA-Z0-9_]*)?$", label), label
    # every name a template uses is an input field or AWX's own `tower`
    known = {field["id"] for field in inputs["fields"]} | {"tower"}
    sandbox = ImmutableSandboxedEnvironment()
    from jinja2 import meta
    for template in list(injectors["env"].values()) + list(injectors["file"].values()):
        used = meta.find_undeclared_variables(sandbox.parse(template))
        assert used <= known, (template, used - known)


def test_injected_names_are_the_ones_the_modules_read(injectors):
    spec = registry_argument_spec()
    fallbacks = {spec[name]["fallback"][1][0] for name in ("username", "password")}
    assert fallbacks == {"IMAGEPUSHER_USERNAME", "IMAGEPUSHER_PASSWORD"}
    assert fallbacks | {"REGISTRY_AUTH_FILE"} == set(injectors["env"])
    paths = _credentials.candidate_files(environ={"REGISTRY_AUTH_FILE": "/x/auth.json"}, home="/nohome")
    assert ("/x/auth.json", False) in paths
    fragment = (REPO / "plugins" / "doc_fragments" / "registry.py").read_text(encoding="utf-8")
    for name in fallbacks | {"REGISTRY_AUTH_FILE"}:
        assert "E(%s)" % name in fragment, "the modules' docs do not mention %s" % name


def test_username_and_password_reach_the_modules(inputs, injectors, tmp_path, monkeypatch):
    env = awx_inject(inputs, injectors, {"username": "mirror-bot", "password": "s3cret"}, str(tmp_path))
    assert env["IMAGEPUSHER_USERNAME"] == "mirror-bot" and env["IMAGEPUSHER_PASSWORD"] == "s3cret"
    # without auth file content, the injected file is an empty auth file, not a broken one
    assert json.loads(Path(env["REGISTRY_AUTH_FILE"]).read_text()) == {}
    creds = module_credentials(env, TARGET, monkeypatch, tmp_path)
    assert (creds.username, creds.password) == ("mirror-bot", "s3cret")


def test_auth_file_content_reaches_the_modules(inputs, injectors, tmp_path, monkeypatch):
    auth = {"auths": {TARGET: {"auth": base64.b64encode(b"mirror-bot:s3cret").decode()}}}
    env = awx_inject(inputs, injectors, {"auth_json": json.dumps(auth, indent=2)}, str(tmp_path))
    # empty fields inject empty variables, which the modules treat as unset
    assert env["IMAGEPUSHER_USERNAME"] == "" and env["IMAGEPUSHER_PASSWORD"] == ""
    assert json.loads(Path(env["REGISTRY_AUTH_FILE"]).read_text()) == auth
    creds = module_credentials(env, TARGET, monkeypatch, tmp_path)
    assert (creds.username, creds.password) == ("mirror-bot", "s3cret")
    assert "REGISTRY_AUTH_FILE" in creds.source or env["REGISTRY_AUTH_FILE"] in creds.source
    # a registry without an entry (a public source) stays anonymous
    anonymous = module_credentials(env, SOURCE, monkeypatch, tmp_path)
    assert (anonymous.username, anonymous.password) == (None, None)


def test_empty_credential_injects_nothing_harmful(inputs, injectors, tmp_path, monkeypatch):
    env = awx_inject(inputs, injectors, {}, str(tmp_path))
    creds = module_credentials(env, TARGET, monkeypatch, tmp_path)
    assert (creds.username, creds.password) == (None, None)


def _ee(path):
    data = yaml.safe_load((REPO / path).read_text(encoding="utf-8"))
    assert data["version"] == 3, "%s: ansible-builder format 3" % path
    return data


def test_collection_ee_metadata_names_existing_files():
    ee = _ee("meta/execution-environment.yml")
    assert set(ee) == {"version", "dependencies"}
    # ansible-builder reads these relative to the collection root
    assert ee["dependencies"] == {"python": "requirements.txt", "system": "bindep.txt"}
    python = (REPO / "requirements.txt").read_text(encoding="utf-8")
    names = [re.split(r"[<>=!~;\[ ]", line.strip(), maxsplit=1)[0].lower()
             for line in python.splitlines() if line.strip() and not line.startswith("#")]
    assert names == ["jsonschema"], names  # HTTP goes through http.client; requests only for IMAGEPUSHER_HTTP=requests
    system = [line for line in (REPO / "bindep.txt").read_text(encoding="utf-8").splitlines()
              if line.strip() and not line.startswith("#")]
    for line in system:
        assert re.match(r"^[a-z0-9][a-z0-9.+-]*( \[[^\]]+\])?$", line), line
    assert {line.split()[0] for line in system} == {"python3", "ca-certificates"}


def test_example_ee_installs_this_collection():
    ee = _ee("examples/execution-environment.yml")
    assert ee["images"]["base_image"]["name"]
    galaxy = yaml.safe_load((REPO / "examples" / ee["dependencies"]["galaxy"]).read_text(encoding="utf-8"))
    meta = yaml.safe_load((REPO / "galaxy.yml").read_text(encoding="utf-8"))
    # Not from a collection server (it is on none yet): the tarball built from the checkout, which
    # additional_build_files copies into the build context where ansible-galaxy runs (_build/).
    tarball = "collections/%s-%s.tar.gz" % (meta["namespace"], meta["name"])
    assert galaxy["collections"] == [{"name": "./" + tarball, "type": "file"}]
    assert {"src": tarball, "dest": "collections"} in ee["additional_build_files"]


def test_readme_shows_the_example_ee_definition():
    text = README.read_text(encoding="utf-8")
    section = text.split("## AWX and execution environments", 1)[1]
    shown = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S).group(1))
    assert shown == _ee("examples/execution-environment.yml")

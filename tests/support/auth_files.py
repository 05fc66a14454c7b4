"""Auth files, credential helpers and a leak check for tests of where credentials come from.

    write_auth_file(path, {"127.0.0.1:5000": basic_entry("alice", pw)}, cred_helpers={...})
    Registry(config=htpasswd_config(write_htpasswd(path, {"alice": pw})))
    helper = install_credential_helper(bin_dir, "imagepusher-test", {"127.0.0.1:5000": ("alice", pw)})
    helper.calls()                       # [(argv, stdin)] of every run
    assert not find_leaks(run, [pw, *issuer.tokens])

A credential helper is a program ``docker-credential-<name>`` that answers ``get`` with the
server name on stdin by printing ``{"ServerURL", "Username", "Secret"}``, or exits 1 with
"credentials not found in native keychain". The fake one is a Python script (shebang: this
interpreter) that answers from a JSON file and logs each call.
"""

from __future__ import annotations

import base64
import json
import stat
import sys
from dataclasses import dataclass
from pathlib import Path


def basic_entry(username: str, password: str) -> dict:
    """An ``auths`` entry as docker login writes it: base64 of user:password."""
    return {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}


def write_htpasswd(path, users: dict[str, str]) -> Path:
    """An htpasswd file for Distribution's ``auth: htpasswd`` (bcrypt entries; cost 4 keeps tests fast)."""
    import bcrypt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()}"
             for user, password in users.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def htpasswd_config(path) -> dict:
    return {"auth": {"htpasswd": {"realm": "imagepusher-test", "path": str(path)}}}


def write_auth_file(path, auths: dict | None = None, *, cred_helpers: dict | None = None,
                    creds_store: str | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    document: dict = {"auths": auths or {}}
    if cred_helpers:
        document["credHelpers"] = cred_helpers
    if creds_store:
        document["credsStore"] = creds_store
    path.touch(mode=0o600)
    path.write_text(json.dumps(document, indent=2))
    return path


_HELPER = '''#!{python}
import json, sys
server = sys.stdin.read()
with open({log!r}, "a") as log:
    log.write(json.dumps([sys.argv[1:], server]) + "\\n")
answers = json.load(open({answers!r}))
if sys.argv[1:] != ["get"] or server not in answers:
    print("credentials not found in native keychain")
    sys.exit(1)
username, secret = answers[server]
print(json.dumps({{"ServerURL": server, "Username": username, "Secret": secret}}))
'''


@dataclass
class CredentialHelper:
    path: Path
    log: Path

    def calls(self) -> list[tuple[list[str], str]]:
        if not self.log.exists():
            return []
        return [tuple(json.loads(line)) for line in self.log.read_text().splitlines() if line.strip()]


def install_credential_helper(bin_dir, name: str, answers: dict[str, tuple[str, str]]) -> CredentialHelper:
    """Write ``bin_dir/docker-credential-<name>`` answering server -> (Username, Secret)."""
    bin_dir = Path(bin_dir)
    bin_dir.mkdir(parents=True, exist_ok=True)
    answers_file = bin_dir / f".{name}.answers.json"
    answers_file.write_text(json.dumps(answers))
    log = bin_dir / f".{name}.calls.jsonl"
    path = bin_dir / f"docker-credential-{name}"
    path.write_text(_HELPER.format(python=sys.executable, log=str(log), answers=str(answers_file)))
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return CredentialHelper(path, log)


def run_texts(run) -> dict[str, str]:
    """Everything a playbook run produced: stdout, stderr and the raw results file."""
    texts = {"stdout": run.stdout, "stderr": run.stderr}
    results = Path(run.run_dir) / "results.jsonl"
    texts["results.jsonl"] = results.read_text(errors="replace") if results.exists() else ""
    texts["results"] = json.dumps(run.results)
    return texts


def find_leaks(run, secrets) -> list[str]:
    """'<where>: <which secret>' for every secret (or its base64 form) found in the run's output."""
    leaks = []
    for where, text in run_texts(run).items():
        for secret in secrets:
            if not secret:
                continue
            forms = {secret, base64.b64encode(secret.encode()).decode().rstrip("=")}
            for form in forms:
                if len(form) >= 8 and form in text:
                    leaks.append(f"{where}: {secret[:4]}... ({'base64' if form != secret else 'plain'})")
    return leaks

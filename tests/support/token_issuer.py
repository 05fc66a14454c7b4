"""A small Docker-registry token service for tests of ``auth: token`` (Bearer) registries.

Distribution verifies the JWTs it is given (see ../shared/NOTES.md): RS256, a header ``x5c``
whose certificate chains to the configured ``rootcertbundle``, and the claims iss, aud, exp,
nbf, iat, jti and ``access``. This issuer signs such tokens with its own RSA key and a
self-signed certificate, and decides what each token grants from a small ACL:

    with TokenIssuer(users={"alice": pw_a, "bob": pw_b}) as issuer:
        with Registry(config=issuer.registry_config()) as reg:
            seed.push(reg.url, "team/app", img, "v1", session=issuer.admin_session("team/app"))
            ...
            issuer.requests        # [TokenRequest(account, scopes, granted, status, ...)]
            issuer.tokens          # every token string handed out (to search outputs for leaks)

ACL (``DEFAULT_ACL``), as the token spec wants it: a token request is answered with the
subset of the requested actions the caller may have, possibly none (the registry then
refuses the request with ``insufficient_scope``); wrong credentials are a 401 from here.

    anyone, anonymous included   public/*    pull
    any authenticated user       private/*   pull
    alice                        team/*      pull, push
    bob                          team/*      pull

Endpoints (threaded http.server on 127.0.0.1, port picked at run time):

    GET  /token?service=&scope=...   Basic credentials optional         -> {"token", "expires_in", ...}
    POST /token  grant_type=refresh_token (an identity token, see ``refresh_tokens``) or
                 grant_type=password, scope="a b" (space separated)     -> {"access_token", ...}

Timing knobs, to test expiry without waiting long (Distribution adds a 60 s leeway to ``exp``;
``valid_for`` is what the REGISTRY accepts, so exp = now + valid_for - 60):

    expires_in   what the answer claims (the client's cache trusts this)
    valid_for    how long the registry really accepts the token (default: expires_in)
    policy       callable(account, scopes) -> dict overriding expires_in / valid_for / delay
                 (seconds to sleep before answering), per request
"""

from __future__ import annotations

import base64
import fnmatch
import http.server
import json
import secrets
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.support.pki import _name, _validity
from tests.support.servers import BackgroundServer

LEEWAY = 60  # seconds Distribution adds to exp (registry/auth/token/token.go)

# (who, repository glob, actions): who is "*" (anyone), "@users" (authenticated) or a user name
DEFAULT_ACL = (
    ("*", "public/*", ("pull",)),
    ("@users", "private/*", ("pull",)),
    ("alice", "team/*", ("pull", "push")),
    ("bob", "team/*", ("pull",)),
)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def decode_claims(token: str) -> dict:
    """The claims of a JWT (no verification: for assertions in tests)."""
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def parse_scope(scope: str):
    """'repository:team/app:pull,push' -> ('repository', 'team/app', ['pull', 'push']); None if malformed."""
    head, sep, actions = scope.rpartition(":")
    if not sep:
        return None
    kind, sep, name = head.partition(":")
    if not sep or not kind or not name:
        return None
    return kind, name, [a for a in actions.split(",") if a]


@dataclass
class TokenRequest:
    method: str
    account: str | None  # None: anonymous (or refused)
    scopes: list[str]  # as requested
    granted: list[dict]  # the access claim handed out
    status: int
    grant_type: str | None = None
    had_authorization: bool = False
    time: float = field(default_factory=time.time)
    token: str | None = field(default=None, repr=False)

    @property
    def scope_set(self) -> frozenset:
        return frozenset(self.scopes)


class TokenIssuer(BackgroundServer):
    def __init__(self, users: dict[str, str] | None = None, acl=DEFAULT_ACL, *,
                 service: str = "imagepusher-test-registry", issuer: str = "imagepusher-test-issuer",
                 expires_in: int = 300, valid_for: int | None = None, policy=None,
                 refresh_tokens: dict[str, str] | None = None, token_field: str = "token"):
        self.users = dict(users or {})
        self.acl = acl
        self.service = service
        self.issuer = issuer
        self.expires_in = expires_in
        self.valid_for = valid_for
        self.policy = policy
        self.refresh_tokens = dict(refresh_tokens or {})  # identity token -> account
        self.token_field = token_field  # "token", "access_token" or "both" (GET answers)
        self.requests: list[TokenRequest] = []
        self.tokens: list[str] = []
        self._lock = threading.Lock()
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        not_before, not_after = _validity()
        name = _name("imagepusher test token signer")
        self.cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self._x5c = base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode("ascii")
        self._workdir = Path(tempfile.mkdtemp(prefix="imagepusher-issuer-"))
        self.rootcertbundle = self._workdir / "rootcertbundle.pem"
        self.rootcertbundle.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def realm(self) -> str:
        return self.url + "/token"

    def start(self) -> "TokenIssuer":
        issuer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                issuer._handle(self)

            do_POST = do_GET

        return self._serve_in_background("127.0.0.1", Handler)

    def registry_config(self) -> dict:
        """The ``auth`` part of a Distribution config that trusts this issuer."""
        return {"auth": {"token": {"realm": self.realm, "service": self.service, "issuer": self.issuer,
                                   "rootcertbundle": str(self.rootcertbundle)}}}

    # -- tokens ----------------------------------------------------------------------------
    def mint(self, access: list[dict], valid_for: int = 300, subject: str = "") -> str:
        """Sign a token granting ``access`` (e.g. for seeding with plain requests)."""
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        claims = {"iss": self.issuer, "sub": subject, "aud": self.service, "exp": now + valid_for - LEEWAY,
                  "nbf": now - 1, "iat": now, "jti": secrets.token_hex(16), "access": access}
        signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "."
                         + b64url(json.dumps(claims, separators=(",", ":")).encode()))
        signature = self._key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        token = signing_input + "." + b64url(signature)
        with self._lock:
            self.tokens.append(token)
        return token

    def admin_session(self, *repositories: str) -> requests.Session:
        """A requests session that may do anything to the named repositories (for seed.push).

        Distribution matches names exactly (no wildcards), so name each repository."""
        access = [{"type": "repository", "name": name, "actions": ["pull", "push", "delete"]}
                  for name in repositories]
        session = requests.Session()
        session.trust_env = False
        token = self.mint(access, valid_for=3600, subject="admin")

        def add_token(request):
            request.headers["Authorization"] = "Bearer " + token
            return request

        session.auth = add_token
        return session

    def allowed(self, account: str | None, name: str) -> set[str]:
        actions: set[str] = set()
        for who, pattern, granted in self.acl:
            if who == "*" or (who == "@users" and account) or (account and who == account):
                if fnmatch.fnmatchcase(name, pattern):
                    actions.update(granted)
        return actions

    def grant(self, account: str | None, scopes: list[str]) -> list[dict]:
        access = []
        for scope in scopes:
            parsed = parse_scope(scope)
            if parsed is None or parsed[0] != "repository":
                continue
            kind, name, wanted = parsed
            actions = [a for a in wanted if a in self.allowed(account, name)]
            if actions:
                access.append({"type": kind, "name": name, "actions": actions})
        return access

    # -- HTTP --------------------------------------------------------------------------------
    def _handle(self, handler) -> None:
        query = parse_qsl(urlsplit(handler.path).query, keep_blank_values=True)
        form = []
        if handler.command == "POST":
            length = int(handler.headers.get("Content-Length") or 0)
            form = parse_qsl(handler.rfile.read(length).decode("utf-8"), keep_blank_values=True)
        if urlsplit(handler.path).path != "/token":
            return self._answer(handler, 404, {"errors": [{"code": "NOT_FOUND", "message": "no such endpoint"}]})
        record = TokenRequest(handler.command, None, [], [], 0,
                              had_authorization="Authorization" in handler.headers)
        if handler.command == "GET":
            record.scopes = [v for k, v in query if k == "scope"]
            service = dict(query).get("service")
            account, ok = self._basic_account(handler.headers.get("Authorization"))
        else:
            fields = dict(form)
            record.grant_type = fields.get("grant_type")
            record.scopes = [s for v in (v for k, v in form if k == "scope") for s in v.split(" ") if s]
            service = fields.get("service")
            account, ok = self._form_account(fields)
        if not ok:
            record.status = 401
            self._record(record)
            return self._answer(handler, 401, {"errors": [{"code": "UNAUTHORIZED",
                                                           "message": "invalid credentials"}]},
                                {"WWW-Authenticate": 'Basic realm="imagepusher test issuer"'})
        if service != self.service:
            record.status = 400
            self._record(record)
            return self._answer(handler, 400, {"errors": [{"code": "BAD_REQUEST", "message": "unknown service"}]})
        record.account = account
        knobs = {"expires_in": self.expires_in, "valid_for": self.valid_for, "delay": 0}
        if self.policy is not None:
            knobs.update(self.policy(account, list(record.scopes)) or {})
        if knobs["delay"]:
            time.sleep(knobs["delay"])
        record.granted = self.grant(account, record.scopes)
        valid_for = knobs["valid_for"] if knobs["valid_for"] is not None else knobs["expires_in"]
        token = self.mint(record.granted, valid_for=valid_for, subject=account or "")
        record.token = token
        record.status = 200
        self._record(record)
        body = {"expires_in": knobs["expires_in"],
                "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        if handler.command == "POST":
            body["access_token"] = token
            body["scope"] = " ".join(record.scopes)
        elif self.token_field == "both":
            body["token"] = body["access_token"] = token
        else:
            body[self.token_field] = token
        self._answer(handler, 200, body)

    def _basic_account(self, header):
        """(account, ok) from a Basic Authorization header; no header is anonymous and ok."""
        if not header:
            return None, True
        scheme, _sep, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None, False
        try:
            user, _sep, password = base64.b64decode(value).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None, False
        if user in self.users and secrets.compare_digest(self.users[user], password):
            return user, True
        return None, False

    def _form_account(self, fields):
        grant_type = fields.get("grant_type")
        if grant_type == "refresh_token":
            account = self.refresh_tokens.get(fields.get("refresh_token", ""))
            return account, account is not None
        if grant_type == "password":
            user, password = fields.get("username", ""), fields.get("password", "")
            ok = user in self.users and secrets.compare_digest(self.users[user], password)
            return (user if ok else None), ok
        return None, False

    def _record(self, record: TokenRequest) -> None:
        with self._lock:
            self.requests.append(record)

    @staticmethod
    def _answer(handler, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode("utf-8")
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)

    # -- observation -------------------------------------------------------------------------
    def requests_for(self, scope_substring: str = "", account: str | None = ...) -> list[TokenRequest]:
        """Token requests with a scope containing ``scope_substring`` (and by ``account`` if given)."""
        return [r for r in self.requests if any(scope_substring in s for s in r.scopes)
                and (account is ... or r.account == account)]

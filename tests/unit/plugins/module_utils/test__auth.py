# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

import base64
import threading

import pytest
from requests.structures import CaseInsensitiveDict

from ansible_collections.imagepusher.registry.plugins.module_utils import _auth
from ansible_collections.imagepusher.registry.plugins.module_utils._auth import (
    Authenticator,
    Credentials,
    describe_scopes,
    parse_challenge,
)
from ansible_collections.imagepusher.registry.plugins.module_utils._errors import (
    AuthenticationError,
    AuthorizationError,
    RegistryError,
)
from ansible_collections.imagepusher.registry.plugins.module_utils._transport import Transport
from tests.unit.plugins.module_utils.fake_http import FakeServer, Reply, json_reply, scripted

REGISTRY = "reg.example"
PASSWORD = "pa55-w0rd-SECRET"
PULL = "repository:team/app:pull"
PUSH = "repository:team/app:pull,push"


# -- parse_challenge ---------------------------------------------------------

@pytest.mark.parametrize("header, expected", [
    ('Bearer realm="https://auth.example.com/token",service="registry.example.com",'
     'scope="repository:team/app:pull,push"',
     ("bearer", {"realm": "https://auth.example.com/token", "service": "registry.example.com",
                 "scope": "repository:team/app:pull,push"})),
    # spaces around separators, several scopes in one value
    ('Bearer realm="https://a/token", service="reg" , scope="repository:a:pull repository:b:pull,push"',
     ("bearer", {"realm": "https://a/token", "service": "reg",
                 "scope": "repository:a:pull repository:b:pull,push"})),
    # escaped quotes and backslashes inside a quoted value
    ('Bearer realm="https://a/token",error="insufficient_scope",error_description="say \\"no\\", a\\\\b"',
     ("bearer", {"realm": "https://a/token", "error": "insufficient_scope", "error_description": 'say "no", a\\b'})),
    # unquoted token values
    ("Bearer realm=https://a/token,service=reg",
     ("bearer", {"realm": "https://a/token", "service": "reg"})),
    ('Basic realm="Registry Realm"', ("basic", {"realm": "Registry Realm"})),
    ('basic realm="x"', ("basic", {"realm": "x"})),
    ('BEARER Realm="https://a/token",SERVICE="s"', ("bearer", {"realm": "https://a/token", "service": "s"})),
    ("Basic", ("basic", {})),
    ('  Bearer realm="r"  ', ("bearer", {"realm": "r"})),
    ('Bearer realm=""', ("bearer", {"realm": ""})),
    ("", None),
    ("   ", None),
    (None, None),
    ('"quoted"', None),
])
def test_parse_challenge(header, expected):
    assert parse_challenge(header) == expected


# -- Credentials and describe_scopes -----------------------------------------

@pytest.mark.parametrize("credentials, expected", [
    (Credentials("alice", PASSWORD), "Credentials(username='alice', password=***)"),
    (Credentials("alice"), "Credentials(username='alice', password=None)"),
    (Credentials(), "Credentials(username=None, password=None)"),
    (Credentials(identity_token=PASSWORD), "Credentials(username=None, password=None)"),
])
def test_credentials_repr_hides_secrets(credentials, expected):
    assert repr(credentials) == expected
    assert PASSWORD not in repr(credentials) and PASSWORD not in str(credentials)


@pytest.mark.parametrize("kwargs, present", [
    ({"username": "alice", "password": "pw"}, True),
    ({"username": "alice"}, False),
    ({"password": "pw"}, False),
    ({"username": "", "password": ""}, False),
    ({"identity_token": "tok"}, True),
    ({}, False),
])
def test_credentials_present(kwargs, present):
    assert Credentials(**kwargs).present is present


def test_credentials_basic_header():
    expected = "Basic " + base64.b64encode(("alice:%s" % PASSWORD).encode()).decode()
    assert Credentials("alice", PASSWORD).basic_header() == expected


@pytest.mark.parametrize("scopes, expected", [
    ([PULL], "pull from team/app"),
    ([PUSH], "push to team/app"),
    (["repository:team/app:push"], "push to team/app"),
    ([PUSH, "repository:library/base:pull"], "push to team/app and pull from library/base"),
    (["repository:a:b:pull"], "pull from a:b"),
    (["registry:catalog:*"], "access registry:catalog:*"),
    ([], ""),
])
def test_describe_scopes(scopes, expected):
    assert describe_scopes(scopes) == expected


@pytest.mark.parametrize("scopes, expected", [
    ([PULL, PUSH], [PUSH]),
    ([PUSH, PULL, ""], [PUSH]),
    (["repository:b:pull", "repository:a:push"], ["repository:a:push", "repository:b:pull"]),
    (["repository:a:push,pull", "repository:a:delete"], ["repository:a:delete,pull,push"]),
    (["registry:catalog:*", "repository:x:pull"], ["registry:catalog:*", "repository:x:pull"]),
    (["oddscope"], ["oddscope"]),
    ([], []),
])
def test_merge_scopes(scopes, expected):
    assert _auth.merge_scopes(scopes) == expected


# -- Authenticator against an in-process token server ------------------------

class Challenge:
    """A 401 answer as Authenticator.answer() sees it."""

    status_code = 401

    def __init__(self, header):
        self.headers = CaseInsensitiveDict({"WWW-Authenticate": header} if header is not None else {})


class Clock:
    def __init__(self, now=1700000000.0):
        self.now = now

    def time(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(_auth, "time", fake)
    return fake


@pytest.fixture
def transport():
    transport = Transport(retries=1, timeout=5, sleep=lambda s: None)
    yield transport
    transport.close()


def token_server(*replies):
    return FakeServer(scripted(*replies))


def bearer(server, service=REGISTRY, scope=None, path="/token", extra=""):
    header = 'Bearer realm="%s%s",service="%s"' % (server.url, path, service)
    if scope:
        header += ',scope="%s"' % scope
    return Challenge(header + extra)


def test_anonymous_token_fetch_sends_exact_query_and_no_authorization(transport, clock):
    with token_server(json_reply({"token": "tok-anon", "expires_in": 300}),
                      json_reply({"token": "tok-push", "expires_in": 300})) as server:
        auth = Authenticator(transport, REGISTRY)
        assert auth.header_for([PULL]) is None  # nothing learned yet
        assert auth.answer(bearer(server), [PULL]) is True
        assert len(server.requests) == 1
        request = server.requests[0]
        assert request.method == "GET"
        assert request.path == "/token?service=reg.example&scope=repository%3Ateam%2Fapp%3Apull"
        assert request.headers.get("Authorization") is None
        assert auth.header_for([PULL]) == "Bearer tok-anon"
        assert len(server.requests) == 1  # cached
        # tokens are per scope set: another set gets its own, fetched before the request (no 401 first)
        assert auth.header_for([PUSH]) == "Bearer tok-push"
        assert server.requests[1].query == [("service", REGISTRY), ("scope", PUSH)]
        assert auth.header_for([PULL]) == "Bearer tok-anon"
        assert auth.header_for([PUSH]) == "Bearer tok-push"
    assert len(server.requests) == 2


def test_token_fetch_merges_challenge_scope_and_keeps_realm_query(transport, clock):
    with token_server(json_reply({"token": "t"})) as server:
        auth = Authenticator(transport, REGISTRY)
        challenge = Challenge('Bearer realm="%s/auth?account=x",service="svc",scope="%s"' % (server.url, PULL))
        assert auth.answer(challenge, [PUSH]) is True
    assert server.requests[0].route == "/auth"
    # the challenge's pull and our pull,push on the same repository are one scope
    assert server.requests[0].query == [("account", "x"), ("service", "svc"), ("scope", PUSH)]
    assert auth.header_for([PUSH]) == "Bearer t"


def test_token_fetch_without_service_omits_it(transport, clock):
    with token_server(json_reply({"token": "t"})) as server:
        auth = Authenticator(transport, REGISTRY)
        auth.answer(Challenge('Bearer realm="%s/token"' % server.url), [PULL])
    assert server.requests[0].query == [("scope", PULL)]


def test_basic_credentials_are_sent_to_the_token_server(transport, clock):
    with token_server(json_reply({"token": "tok-alice"})) as server:
        auth = Authenticator(transport, REGISTRY, Credentials("alice", PASSWORD))
        assert auth.answer(bearer(server), [PUSH]) is True
    expected = "Basic " + base64.b64encode(("alice:%s" % PASSWORD).encode()).decode()
    assert server.requests[0].headers["Authorization"] == expected
    assert PASSWORD not in server.requests[0].path
    assert auth.header_for([PUSH]) == "Bearer tok-alice"


def test_identity_token_uses_the_oauth2_refresh_flow(transport, clock):
    with token_server(json_reply({"access_token": "tok-oauth"})) as server:
        auth = Authenticator(transport, REGISTRY, Credentials(identity_token="refresh-" + PASSWORD))
        assert auth.answer(bearer(server), [PULL]) is True
    request = server.requests[0]
    assert request.method == "POST" and request.path == "/token"
    from urllib.parse import parse_qsl
    assert parse_qsl(request.body.decode()) == [
        ("grant_type", "refresh_token"), ("refresh_token", "refresh-" + PASSWORD), ("client_id", "imagepusher"),
        ("service", REGISTRY), ("scope", PULL)]
    assert request.headers.get("Authorization") is None
    assert auth.header_for([PULL]) == "Bearer tok-oauth"


@pytest.mark.parametrize("body, expected", [
    ({"token": "a"}, "Bearer a"),
    ({"access_token": "b"}, "Bearer b"),
    ({"token": "a", "access_token": "b"}, "Bearer a"),
    ({"token": "", "access_token": "b"}, "Bearer b"),
])
def test_token_or_access_token_is_accepted(transport, clock, body, expected):
    with token_server(json_reply(body)) as server:
        auth = Authenticator(transport, REGISTRY)
        auth.answer(bearer(server), [PULL])
    assert auth.header_for([PULL]) == expected


@pytest.mark.parametrize("expires_in, still_valid_at, expired_at", [
    (300, 289, 291),  # renewed EXPIRY_MARGIN (10 s) early
    (None, 49, 51),  # no expires_in: 60 s per the token spec
    ("garbage", 49, 51),
    (5, 0.5, 1.5),  # shorter than the margin: still usable for one second
    (1, 0.5, 1.5),
])
def test_expires_in_is_honoured(transport, clock, expires_in, still_valid_at, expired_at):
    body = {"token": "tok"}
    if expires_in is not None:
        body["expires_in"] = expires_in
    start = clock.now
    with token_server(json_reply(body)) as server:
        auth = Authenticator(transport, REGISTRY)
        auth.answer(bearer(server), [PULL])
    clock.now = start + still_valid_at
    assert auth.cached_token([PULL]) == "tok"
    clock.now = start + expired_at
    assert auth.cached_token([PULL]) is None


def test_a_second_401_drops_the_cached_token_and_fetches_a_new_one(transport, clock):
    with token_server(json_reply({"token": "first"}), json_reply({"token": "second"})) as server:
        auth = Authenticator(transport, REGISTRY)
        auth.answer(bearer(server), [PULL])
        assert auth.header_for([PULL]) == "Bearer first"
        auth.answer(bearer(server), [PULL])
    assert auth.header_for([PULL]) == "Bearer second"
    assert len(server.requests) == 2


@pytest.mark.parametrize("status", [401, 403])
def test_token_service_refusal_is_an_authentication_error_without_the_password(transport, clock, status):
    reply = json_reply({"errors": [{"code": "UNAUTHORIZED", "message": "bad password " + PASSWORD}]}, status=status)
    with token_server(reply) as server:
        auth = Authenticator(transport, REGISTRY, Credentials("alice", PASSWORD))
        with pytest.raises(AuthenticationError) as info:
            auth.answer(bearer(server), [PULL])
    assert info.value.message == ("authentication failed for reg.example: the token service refused the "
                                  "credentials of alice")
    assert info.value.status == status
    assert PASSWORD not in str(info.value) and PASSWORD not in repr(info.value.details)
    assert PASSWORD not in repr(info.value.args)
    assert auth.cached_token([PULL]) is None


def test_token_service_refusal_for_anonymous(transport, clock):
    with token_server(Reply(401)) as server:
        auth = Authenticator(transport, REGISTRY)
        with pytest.raises(AuthenticationError, match="refused the credentials of anonymous$"):
            auth.answer(bearer(server), [PULL])


@pytest.mark.parametrize("reply, error, message", [
    (Reply(404, b"nope"), RegistryError, "token service of reg.example answered HTTP 404"),
    (Reply(200, b"<html>"), RegistryError, "token service answered with invalid JSON"),
    (Reply(200, b"[1, 2]"), RegistryError, "token service answered with JSON that is not an object"),
    (json_reply({"expires_in": 60}), AuthenticationError, "token service of reg.example returned no token"),
    (json_reply({"token": 42}), AuthenticationError, "token service of reg.example returned no token"),
    (Reply(200, b'{"token": "' + b"x" * (1024 * 1024 + 10) + b'"}'), RegistryError,
     "answer from the token service is larger than 1048576 bytes"),
])
def test_bad_token_service_answers(transport, clock, reply, error, message):
    with token_server(reply) as server:
        auth = Authenticator(transport, REGISTRY)
        with pytest.raises(error) as info:
            auth.answer(bearer(server), [PULL])
    assert info.value.message == message
    assert auth.cached_token([PULL]) is None


@pytest.mark.parametrize("header", [
    'Bearer service="reg.example"',
    'Bearer realm="ftp://auth.example/token"',
    'Bearer realm="/token"',
])
def test_bearer_challenge_without_a_usable_realm(transport, header):
    auth = Authenticator(transport, REGISTRY)
    with pytest.raises(AuthenticationError) as info:
        auth.answer(Challenge(header), [PULL])
    assert info.value.message == "registry reg.example sent a Bearer challenge without a usable realm"
    assert info.value.status == 401


def test_basic_challenge_without_credentials_asks_for_username_and_password(transport):
    auth = Authenticator(transport, REGISTRY)
    with pytest.raises(AuthenticationError) as info:
        auth.answer(Challenge('Basic realm="Registry"'), [PULL])
    assert info.value.message == ("registry reg.example requires authentication: set username and password, or log "
                                  "in so that an auth file holds credentials for it")
    assert info.value.status == 401


def test_basic_challenge_with_credentials_sends_basic_on_every_request(transport):
    auth = Authenticator(transport, REGISTRY, Credentials("alice", PASSWORD))
    assert auth.header_for([PULL]) is None
    assert auth.answer(Challenge('Basic realm="Registry"'), [PULL]) is True
    expected = Credentials("alice", PASSWORD).basic_header()
    assert auth.header_for([PULL]) == expected
    assert auth.header_for([PUSH]) == expected  # Basic is not per scope


def test_basic_challenge_with_only_an_identity_token_asks_for_username_and_password(transport):
    auth = Authenticator(transport, REGISTRY, Credentials(identity_token="tok"))
    with pytest.raises(AuthenticationError, match="set username and password"):
        auth.answer(Challenge('Basic realm="Registry"'), [PULL])
    assert auth.header_for([PULL]) is None


def test_unsupported_scheme(transport):
    auth = Authenticator(transport, REGISTRY)
    with pytest.raises(AuthenticationError) as info:
        auth.answer(Challenge("Negotiate abc"), [PULL])
    assert info.value.message == "registry reg.example asks for unsupported authentication scheme 'negotiate'"


@pytest.mark.parametrize("header", [None, ""])
def test_401_without_challenge_is_not_worth_retrying(transport, header):
    auth = Authenticator(transport, REGISTRY)
    assert auth.answer(Challenge(header), [PULL]) is False
    assert auth.header_for([PULL]) is None


@pytest.mark.parametrize("username, challenge, status, error, message", [
    ("alice", 'Bearer realm="https://a/t"', 403, AuthorizationError, "alice may not push to team/app"),
    (None, 'Bearer realm="https://a/t"', 403, AuthorizationError, "anonymous may not push to team/app"),
    ("alice", 'Bearer realm="https://a/t",error="insufficient_scope"', 401, AuthorizationError,
     "alice may not push to team/app"),
    ("alice", 'Bearer realm="https://a/t",error="invalid_token"', 401, AuthenticationError,
     "authentication failed for reg.example (user alice)"),
    ("alice", 'Basic realm="r",error="insufficient_scope"', 401, AuthenticationError,
     "authentication failed for reg.example (user alice)"),
    (None, None, 401, AuthenticationError, "authentication failed for reg.example (user anonymous)"),
])
def test_denied(transport, monkeypatch, username, challenge, status, error, message):
    auth = Authenticator(transport, REGISTRY, Credentials(username, PASSWORD if username else None))
    if challenge:
        # learn the challenge without a token round trip
        monkeypatch.setattr(auth, "_fetch_token", lambda params, scopes: ("t", 60))
        auth.answer(Challenge(challenge), [PUSH])
    err = auth.denied([PUSH], status)
    assert err.__class__ is error
    assert err.message == message
    assert err.status == status
    assert PASSWORD not in err.message


# -- token refresh in the middle of a run ------------------------------------------------

class Sent:
    """A 401 answer that also tells which Authorization header the refused request carried."""

    status_code = 401

    def __init__(self, header, authorization):
        self.headers = CaseInsensitiveDict({"WWW-Authenticate": header})

        class Prepared:
            headers = CaseInsensitiveDict({"Authorization": authorization} if authorization else {})
        self.request = Prepared()


def test_a_known_bearer_registry_gets_tokens_for_new_scope_sets_before_the_request(transport, clock):
    with token_server(json_reply({"token": "t-pull"}), json_reply({"token": "t-mount"})) as server:
        auth = Authenticator(transport, REGISTRY)
        auth.answer(bearer(server, scope=PULL), [PULL])
        mount = [PUSH, "repository:library/base:pull"]
        assert auth.header_for(mount) == "Bearer t-mount"
    # the earlier challenge's scope is not carried over to the new scope set
    assert server.requests[1].query == [("service", REGISTRY), ("scope", "repository:library/base:pull"),
                                        ("scope", PUSH)]


def test_an_expired_token_is_replaced_before_the_request(transport, clock):
    with token_server(json_reply({"token": "old", "expires_in": 30}), json_reply({"token": "new"})) as server:
        auth = Authenticator(transport, REGISTRY)
        auth.answer(bearer(server), [PULL])
        assert auth.header_for([PULL]) == "Bearer old"
        clock.now += 25  # within EXPIRY_MARGIN of expiry
        assert auth.header_for([PULL]) == "Bearer new"
    assert len(server.requests) == 2


def test_a_401_to_the_cached_token_fetches_a_new_one(transport, clock):
    with token_server(json_reply({"token": "first", "expires_in": 300}), json_reply({"token": "second"})) as server:
        auth = Authenticator(transport, REGISTRY)
        auth.answer(bearer(server), [PULL])
        # the registry expired "first" earlier than expires_in said
        assert auth.answer(Sent(bearer(server).headers["WWW-Authenticate"] + ',error="invalid_token"',
                                "Bearer first"), [PULL]) is True
        assert auth.header_for([PULL]) == "Bearer second"
    assert len(server.requests) == 2


def test_a_401_to_an_older_token_reuses_the_one_another_thread_fetched(transport, clock):
    with token_server(json_reply({"token": "first"}), json_reply({"token": "second"})) as server:
        auth = Authenticator(transport, REGISTRY)
        auth.answer(bearer(server), [PULL])
        challenge = bearer(server).headers["WWW-Authenticate"]
        auth.answer(Sent(challenge, "Bearer first"), [PULL])  # thread A refreshes
        assert auth.answer(Sent(challenge, "Bearer first"), [PULL]) is True  # thread B, same stale token
        assert auth.answer(Sent(challenge, None), [PULL]) is True  # thread C had sent nothing yet
        assert auth.header_for([PULL]) == "Bearer second"
    assert len(server.requests) == 2


def test_threads_hitting_the_same_expired_token_share_one_new_token(transport, clock):
    def slow(request, handler):
        threading.Event().wait(0.2)  # (time is the fake clock here)
        return json_reply({"token": "tok-%d" % len(server.requests)})

    server = FakeServer(slow)
    with server:
        auth = Authenticator(transport, REGISTRY)
        challenge = bearer(server).headers["WWW-Authenticate"]
        results = []
        threads = [threading.Thread(target=lambda: results.append(auth.answer(Sent(challenge, None), [PULL])))
                   for _index in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert results == [True] * 6
        assert auth.header_for([PULL]) == "Bearer tok-1"
    assert len(server.requests) == 1


@pytest.mark.parametrize("first, final, error, message", [
    # the first 401 (no token) has no error; the final one says the token lacks the scope
    ('Bearer realm="https://a/t"', 'Bearer realm="https://a/t",error="insufficient_scope"', AuthorizationError,
     "bob may not push to team/app"),
    ('Bearer realm="https://a/t",error="insufficient_scope"', 'Bearer realm="https://a/t",error="invalid_token"',
     AuthenticationError, "authentication failed for reg.example (user bob)"),
    ('Bearer realm="https://a/t"', None, AuthenticationError, "authentication failed for reg.example (user bob)"),
])
def test_denied_reads_the_final_challenge(transport, monkeypatch, first, final, error, message):
    auth = Authenticator(transport, REGISTRY, Credentials("bob", PASSWORD))
    monkeypatch.setattr(auth, "_fetch_token", lambda params, scopes: ("t", 60))
    auth.answer(Challenge(first), [PUSH])
    err = auth.denied([PUSH], 401, final)
    assert err.__class__ is error and err.message == message


@pytest.mark.parametrize("credentials, message", [
    (Credentials("alice", PASSWORD, source="auth file /x/auth.json"),
     "authentication failed for reg.example: the token service refused the credentials of alice (from auth file "
     "/x/auth.json)"),
    (Credentials(identity_token=PASSWORD, source="credential helper docker-credential-x (credHelpers of /c)"),
     "authentication failed for reg.example: the token service refused the credentials of the identity token "
     "(from credential helper docker-credential-x (credHelpers of /c))"),
])
def test_refusals_say_where_the_credentials_came_from(transport, clock, credentials, message):
    with token_server(Reply(401, b"no")) as server:
        auth = Authenticator(transport, REGISTRY, credentials)
        with pytest.raises(AuthenticationError) as info:
            auth.answer(bearer(server), [PULL])
    assert info.value.message == message
    assert PASSWORD not in info.value.message
    denied = auth.denied([PULL], 401)
    assert denied.message.startswith("authentication failed for reg.example (user ")
    assert "credentials from " in denied.message and PASSWORD not in denied.message

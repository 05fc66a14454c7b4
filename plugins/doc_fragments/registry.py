# -*- coding: utf-8 -*-
# Copyright: contributors to imagepusher.registry
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Options for connecting to a registry: auth, TLS, retries.
    DOCUMENTATION = r"""
options:
  username:
    description:
      - User name for the registry.
      - Falls back to the environment variable E(IMAGEPUSHER_USERNAME).
      - Credentials are looked up in this order, and the first that has some for the registry wins.
        (1) O(username) and O(password) (both must be set);
        (2) the auth file O(auth_file);
        (3) the auth file named by E(REGISTRY_AUTH_FILE);
        (4) C($XDG_RUNTIME_DIR/containers/auth.json) (written by C(podman login), C(skopeo login));
        (5) C($XDG_CONFIG_HOME/containers/auth.json), by default C(~/.config/containers/auth.json) (where podman
        looks next);
        (6) C($DOCKER_CONFIG/config.json);
        (7) C(~/.docker/config.json) (written by C(docker login)).
        Files that do not exist are skipped, except O(auth_file).
      - In an auth file, a C(credHelpers) entry for the registry is used first (the program
        C(docker-credential-<name>) is run with C(get)), then an C(auths) entry (C(auth), that is base64 of
        C(user:password), or C(username) and C(password), or an C(identitytoken)), then the C(credsStore) helper.
        An C(auths) key may be written C(host), C(host:port) or C(https://host/v1/); the Docker Hub names
        C(docker.io), C(index.docker.io), C(registry-1.docker.io) and C(https://index.docker.io/v1/) are the same
        entry. A key with a path and no scheme (C(quay.io/team)) applies to repositories under that path and wins
        over the host's entry.
      - Without credentials, the modules use anonymous access (an anonymous Bearer token where the registry offers one).
    type: str
  password:
    description:
      - Password or access token for O(username).
      - Falls back to the environment variable E(IMAGEPUSHER_PASSWORD).
      - Never returned, logged or shown in error messages.
    type: str
  auth_file:
    description:
      - Path of an auth file in the format of C(~/.docker/config.json) or C(containers-auth.json) to take
        credentials from, before the default locations (see O(username) for the whole lookup order).
      - It must exist. Credentials in it, and those a credential helper returns, never appear in results or
        messages.
      - The alias O(authfile) is the name containers.podman's modules use.
    type: path
    aliases: [authfile]
  validate_certs:
    description:
      - Verify the registry's TLS certificate.
      - Set to V(false) only for testing; prefer O(ca_path) for a registry with a private CA.
    type: bool
    default: true
    aliases: [tls_verify]
  ca_path:
    description:
      - PEM file, or directory of PEM files, of CA certificates that signed the registry's certificate.
      - A directory does not need to be prepared with C(c_rehash) or C(openssl rehash); every certificate in
        every file directly in it is read.
      - These certificates are trusted in addition to the default CA bundle (E(REQUESTS_CA_BUNDLE) or
        E(CURL_CA_BUNDLE) when set, else C(certifi)'s bundle when that package is installed, else the system's), so a
        registry that redirects blob downloads to public object storage keeps working.
    type: path
  client_cert:
    description:
      - PEM file with the client certificate to present to a registry that requires mutual TLS.
      - It may also hold the private key; otherwise set O(client_key).
    type: path
  client_key:
    description:
      - PEM file with the unencrypted private key of O(client_cert).
    type: path
  plain_http:
    description:
      - Talk plain HTTP to the registry instead of HTTPS.
      - Loopback registries (V(localhost), V(127.0.0.0/8), V(::1)) are tried with HTTPS first and fall back to HTTP
        without this option, as Docker does.
    type: bool
    default: false
  timeout:
    description:
      - Seconds to wait for a connection or for the next bytes of an answer.
      - It also bounds a slow trickle, not only silence. Every request must move at least 1 KiB/s (sent and received
        together), averaged over each window of O(timeout) seconds, from the moment it is sent; a connection below that
        floor is cut and the request retried, or the transfer resumed, as after a dropped connection (it draws on the
        same O(retries) budget). So one attempt that stalls or trickles ends within about twice O(timeout). The floor
        is measured by the kernel's TCP counters (Linux); elsewhere only the per-read wait applies.
    type: int
    default: 60
  retries:
    description:
      - How many times a request is retried after a connection failure, a timeout or an answer of
        408, 429, 500, 502, 503 or 504. Other errors are not retried.
      - Waits double from 0.5 seconds, with jitter, capped at 30 seconds each; a V(Retry-After) header is honoured
        within that cap. So a request gives up after at most O(retries) times 30 seconds of waiting
        plus O(retries) + 1 times O(timeout).
      - A download that drops part way resumes from the bytes already received, and an upload that fails part way
        goes on from what the registry holds. Each blob has one budget of O(retries) shared by its requests and
        these resumes, so a blob waits at most O(retries) times 30 seconds in all.
      - A registry name that does not resolve is not retried. A refused connection (nothing listens on that host and
        port, or on the proxy's) is retried for about 3 seconds of waiting in all, however many O(retries) allow. The
        message says how many attempts were made over how long, and names the proxy and the variable that set it when
        the connection went through one.
    type: int
    default: 5
  requests_per_second:
    description:
      - At most this many requests a second to each registry the task talks to, each registry counted on its own
        (a mirror's source and target each get this rate). Every request made for a registry counts, including
        token requests to its auth server and resumed transfers; requests are spaced evenly, so no second sees
        more than this number plus one, however many transfers run at once.
      - Unset, requests go as fast as the transfer needs.
      - Docker Hub counts manifest V(GET)s against its pull quota, not V(HEAD)s; a run over images the target already
        has makes only V(HEAD) requests for their manifests, so a warm re-run spends no quota.
    type: float
  registries_conf:
    description:
      - A C(containers-registries.conf) file (version 2, TOML, as podman, skopeo and buildah read it) to use instead of
        the default lookup, which takes the first that exists of E(CONTAINERS_REGISTRIES_CONF),
        C($XDG_CONFIG_HOME/containers/registries.conf) (by default C(~/.config/containers/registries.conf)) and
        C(/etc/containers/registries.conf), then the drop-ins C(/etc/containers/registries.conf.d/*.conf) and (unless
        the main file is the user's) C(~/.config/containers/registries.conf.d/*.conf) in name order. With this option
        that file alone is read. The file is read on the managed host.
      - Where an image is read (the image of M(imagepusher.registry.image_pull), the sources of
        M(imagepusher.registry.image_mirror) and of M(imagepusher.registry.image_push) O(imagepusher.registry.image_push#module:source),
        a registry inspected by M(imagepusher.registry.image_info)), the C([[registry]]) entry whose C(prefix) matches
        the image longest applies, as in containers/image. Its C([[registry.mirror]]) locations are tried in order
        (C(pull-from-mirror) V(all), V(digest-only) or V(tag-only), and C(mirror-by-digest-only), say which
        references use them), then its C(location) (the C(prefix) rewritten to it). A location that is down or fails
        passes the read on to the next. The result's C(source_location) says which one served the image; the cache
        keeps the name the task gave.
      - For every registry, read or written, C(insecure = true) skips TLS certificate verification and allows plain
        HTTP when the registry does not speak TLS, and C(blocked = true) refuses the registry with a clear message.
      - C(unqualified-search-registries), C(aliases) and short-name settings are not used; a short name keeps
        meaning Docker Hub (V(nginx) is C(docker.io/library/nginx)). The version 1 tables C([registries.insecure])
        and C([registries.block]) are honoured.
      - The file is read with Python's C(tomllib) (Python 3.11 and later) or the C(tomli) package (C(python3-tomli) on
        RHEL 9). Without either, a registries.conf that exists is reported in a warning and not used.
      - A file that is not valid TOML fails the task with a message naming the file and the line.
    type: path
notes:
  - Proxies are taken from the environment (E(HTTPS_PROXY), E(HTTP_PROXY), E(ALL_PROXY), E(NO_PROXY), lower-case
    names first); ~/.netrc is not read. A proxy must be an C(http://) one (HTTPS goes through it in a C(CONNECT)
    tunnel); an C(https://) proxy URL is refused with a message saying so.
  - HTTP is sent with Python's own C(http.client). E(IMAGEPUSHER_HTTP=requests) on the host that runs the module
    sends it through the C(requests) library instead, as earlier releases did (C(requests) must then be installed);
    that way back is kept for one release.
  - When the registry redirects a download to another host (object storage), the registry's
    C(Authorization) header is not sent there.
  - A registry that announces its quota (Docker Hub's C(ratelimit-limit) and C(ratelimit-remaining) headers, or the
    IETF C(RateLimit) headers) has it reported in RV(rate_limits). When it answers 429 with its quota used up and no
    C(Retry-After) within 30 seconds, the task fails at once with a message saying so instead of spending its retries.
"""

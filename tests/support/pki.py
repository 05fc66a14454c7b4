"""Make a small PKI for TLS tests with ``cryptography`` (no openssl CLI, no network).

    ca = CertificateAuthority("imagepusher test CA")
    server = ca.issue("127.0.0.1", ips=["127.0.0.1"], dns=["localhost"])   # serverAuth
    client = ca.issue("alice", client=True)                               # clientAuth
    paths = server.write(tmp_path / "server")      # {"cert": Path, "key": Path}
    ca.write(tmp_path / "ca.pem")

    Registry(config={"http": {"tls": {"certificate": str(paths["cert"]), "key": str(paths["key"])}}})

Keys are EC P-256 (fast to make); the token issuer needs RSA and makes its own key. Certificates
are valid from an hour ago for two days, so clock skew between processes does not matter.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.registry import Registry


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "imagepusher tests")])


def _validity():
    now = datetime.datetime.now(datetime.timezone.utc)
    return now - datetime.timedelta(hours=1), now + datetime.timedelta(days=2)


def key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class Issued:
    cert: x509.Certificate
    key: object

    @property
    def cert_pem(self) -> bytes:
        return cert_pem(self.cert)

    @property
    def key_pem(self) -> bytes:
        return key_pem(self.key)

    def write(self, directory, name: str = "tls") -> dict[str, Path]:
        """Write ``<name>.crt`` and ``<name>.key`` (0600) into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
        cert_path.write_bytes(self.cert_pem)
        key_path.touch(mode=0o600)
        key_path.write_bytes(self.key_pem)
        return {"cert": cert_path, "key": key_path}


class CertificateAuthority:
    """A self-signed root that issues server and client certificates."""

    def __init__(self, common_name: str = "imagepusher test CA"):
        self.key = ec.generate_private_key(ec.SECP256R1())
        not_before, not_after = _validity()
        name = _name(common_name)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )

    @property
    def cert_pem(self) -> bytes:
        return cert_pem(self.cert)

    def write(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.cert_pem)
        return path

    def issue(self, common_name: str, *, ips=(), dns=(), client: bool = False) -> Issued:
        """A leaf for a server (SANs from ``ips``/``dns``) or, with client=True, a TLS client."""
        key = ec.generate_private_key(ec.SECP256R1())
        not_before, not_after = _validity()
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name)).issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                           critical=False)
        )
        names = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips] + [x509.DNSName(d) for d in dns]
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return Issued(builder.sign(self.key, hashes.SHA256()), key)


def tls_registry_config(server_cert: Path, server_key: Path, client_ca: Path | None = None) -> dict:
    """The ``http.tls`` part of a Distribution config (``clientcas`` turns on mutual TLS)."""
    tls = {"certificate": str(server_cert), "key": str(server_key)}
    if client_ca is not None:
        tls["clientcas"] = [str(client_ca)]
    return {"http": {"tls": tls}}


class MutualTLSRegistry(Registry):
    """A Registry whose ``http.tls.clientcas`` demands a client certificate.

    The launcher's readiness probe has no client certificate, so the handshake fails even when
    the registry is up; this one probes with ``client_cert`` (a dict from Issued.write()).
    """

    def __init__(self, config: dict | None = None, *, client_cert: dict, **kwargs):
        super().__init__(config, **kwargs)
        self.client_cert = client_cert

    def _wait_ready(self) -> str | None:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.load_cert_chain(str(self.client_cert["cert"]), str(self.client_cert["key"]))
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                             urllib.request.HTTPSHandler(context=ctx))
        deadline = time.monotonic() + self.startup_timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return f"exited with {self._proc.returncode}"
            try:
                with opener.open(self.url + "/v2/", timeout=2) as answer:
                    return None if answer.status == 200 else f"GET /v2/ -> {answer.status}"
            except urllib.error.HTTPError as exc:
                if exc.code == 401:
                    return None
                last = f"GET /v2/ -> {exc.code}"
            except (urllib.error.URLError, OSError) as exc:
                last = str(getattr(exc, "reason", exc))
            time.sleep(0.05)
        return f"not ready after {self.startup_timeout}s ({last})"

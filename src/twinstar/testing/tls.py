"""Serve a venue under its real host name on loopback, over TLS.

ccxt decides some things by URL (Binance picks its futures error table by the
`https://fapi.binance.com/` prefix), so rewriting URLs to 127.0.0.1 changes
behaviour. Instead the client keeps the real URLs and gets a session whose
resolver maps exactly the venue's host names to the loopback server and
refuses every other name: nothing can reach the internet, and the server
presents a throw-away certificate that only this session trusts.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult


def self_signed_contexts(hosts: tuple[str, ...]) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """Return (server, client) TLS contexts for a fresh certificate naming `hosts`."""
    from cryptography import x509  # installed with ccxt
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    now = dt.datetime.now(tz=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    with tempfile.TemporaryDirectory(prefix="twinstar-tls-") as tmp:  # contexts read the files at load time
        cert_path, key_path = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server.load_cert_chain(cert_path, key_path)
        client = ssl.create_default_context(cafile=str(cert_path))
    return server, client


class LoopbackResolver(AbstractResolver):
    """Resolves the given host names to 127.0.0.1:port; every other name fails."""

    def __init__(self, hosts: tuple[str, ...], port: int) -> None:
        self.hosts = set(hosts)
        self.port = port

    async def resolve(
        self,
        host: str,
        port: int = 0,
        family: socket.AddressFamily = socket.AF_INET,
    ) -> list[ResolveResult]:
        """Map a venue host to the loopback server; refuse anything else."""
        if host not in self.hosts:
            raise OSError(f"{host} is not a loopback venue host (tests never reach the internet)")
        return [
            ResolveResult(
                hostname=host,
                host="127.0.0.1",
                port=self.port,
                family=socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        """Nothing to release."""


def loopback_session(hosts: tuple[str, ...], port: int, client_tls: ssl.SSLContext) -> Any:
    """An aiohttp session for ccxt (`{'session': ...}`) that reaches only the loopback venue."""
    connector = aiohttp.TCPConnector(resolver=LoopbackResolver(hosts, port), ssl=client_tls)
    return aiohttp.ClientSession(connector=connector)

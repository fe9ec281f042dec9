"""Server addresses: `host:port`, `http://host:port` (plaintext) or `https://host[:port]` (TLS)."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_ADDRESS = "localhost:50051"


@dataclass(frozen=True)
class Address:
    host: str
    port: int
    tls: bool

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"


def parse_address(address: str, tls: bool | None = None) -> Address:
    scheme, _, rest = address.rpartition("://")
    secure = scheme == "https" if tls is None else tls
    host, _, port = (rest or address).rstrip("/").rpartition(":")
    if not host:
        host, port = (rest or address).rstrip("/"), ""
    host = host.strip("[]")
    return Address(host or "localhost", int(port) if port else (443 if secure else 50051), secure)

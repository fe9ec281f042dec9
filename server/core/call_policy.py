"""Who may call what, and who is calling: which methods need no credentials and which are
not built yet (CallPolicy), and the caller's address behind a trusted proxy."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

ALWAYS_PUBLIC_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


class CallPolicy:
    """Which methods need no credentials (and which of those still identify a caller who
    sends valid ones), which are not built yet, and which read their caller's account state
    themselves."""

    def __init__(
        self,
        public: Iterable[str] = (),
        unimplemented: Iterable[str] = (),
        caller_if_given: Iterable[str] = (),
        state_read_by_handler: Iterable[str] = (),
    ) -> None:
        self.public = frozenset(public)
        self.unimplemented = frozenset(unimplemented)
        self.caller_if_given = frozenset(caller_if_given)
        self.state_read_by_handler = frozenset(state_read_by_handler)
        """Unary methods whose handler reads a signed-in caller's account state itself
        (server/core/caller_state.py)."""

    def is_public(self, method: str) -> bool:
        return method in self.public or method.startswith(ALWAYS_PUBLIC_PREFIXES)


def client_address(peer: str, metadata: dict[str, str], trusted_proxies: frozenset[str]) -> str:
    """The caller's IP: the peer, or the last x-forwarded-for hop when the peer is our proxy."""
    address = peer
    if peer.startswith(("ipv4:", "ipv6:")):
        address = peer.split(":", 1)[1]
        if address.startswith("["):
            address = address[1 : address.index("]")]
        else:
            address = address.rsplit(":", 1)[0]
    forwarded = metadata.get("x-forwarded-for")
    if forwarded and address in trusted_proxies:
        candidate = forwarded.split(",")[-1].strip()
        try:
            ipaddress.ip_address(candidate)
        except ValueError:
            return address
        return candidate
    return address

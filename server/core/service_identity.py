"""Service identities: a caller authenticated by its client certificate (mutual TLS) whose
SPIFFE ID (URI SAN) or DNS SAN is mapped by Settings to a service role.

A service's Caller carries the identity and the role's scopes and names no user: its
`user_id` is a fixed UUID derived from the identity (version 5; users' ids are version 7,
so it is no user's), so every per-user query finds nothing of its own. It holds the admin
role when its scopes include `admin`.

Scopes are checked by the same rule as API keys (server/core/scopes.py `needed_scopes`).
Services act in no project and own no rows, so they may call only the RPCs below, which
read shared data or administer users; others are refused with PERMISSION_DENIED. Granting
projects to a service is left for later."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from server.config_tls import ServiceRoleSetting, is_uri_identity
from server.core.context import AuthMethod, Caller
from server.core.errors import PermissionDenied, Unauthenticated
from server.core.scopes import ADMIN, needed_scopes

SERVICE_METHODS = frozenset(
    {
        "ListModels",
        "ListProviders",
        "ListRuntimes",
        "GetSystemStats",
        "ListUsers",
        "UpdateUser",
        "ListAuditEvents",
    }
)
"""What a service identity may call (each still needs its scopes)."""

_NAMESPACE = uuid.UUID("6f0c2b8e-5d1e-4f7a-9c7e-2a4f3b1d9e10")
MAX_SHOWN_IDENTITY = 200


@dataclass(frozen=True)
class PeerIdentities:
    """The identities a client certificate proved: URI SANs and DNS SANs."""

    uris: tuple[str, ...] = ()
    dns_names: tuple[str, ...] = ()

    @classmethod
    def of(cls, auth_context: Mapping[str, Iterable[bytes]]) -> PeerIdentities:
        """From grpc's `context.auth_context()`: `peer_uri` holds the URI SANs, `peer_dns`
        the DNS SANs of a verified client certificate (empty without one)."""

        def values(key: str) -> tuple[str, ...]:
            return tuple(v.decode("utf-8", "replace") for v in auth_context.get(key, ()))

        return cls(values("peer_uri"), tuple(name.lower() for name in values("peer_dns")))

    def __bool__(self) -> bool:
        return bool(self.uris or self.dns_names)

    def shown(self) -> str:
        return ", ".join((*self.uris, *self.dns_names))[:MAX_SHOWN_IDENTITY]


def service_user_id(identity: str) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, identity)


class ServiceIdentities:
    """The mapping of Settings, turning a peer's certificate identities into a Caller."""

    def __init__(self, mapping: Mapping[str, ServiceRoleSetting]) -> None:
        self._uris = {k: v for k, v in mapping.items() if is_uri_identity(k)}
        self._dns = {k: v for k, v in mapping.items() if not is_uri_identity(k)}

    def __bool__(self) -> bool:
        return bool(self._uris or self._dns)

    def caller(self, peer: PeerIdentities) -> Caller:
        """The Caller of a mapped identity (URI SANs first, then DNS SANs, in certificate
        order); UNAUTHENTICATED when none is mapped."""
        for identity, roles in ((u, self._uris) for u in peer.uris):
            if identity in roles:
                return _service_caller(identity, roles[identity])
        for identity, roles in ((d, self._dns) for d in peer.dns_names):
            if identity in roles:
                return _service_caller(identity, roles[identity])
        raise Unauthenticated(
            f"the client certificate's identity ({peer.shown()}) is not mapped to a service "
            "role; send a token or API key, or ask an operator to map it",
            "SERVICE_IDENTITY_UNKNOWN",
        )


def _service_caller(identity: str, role: ServiceRoleSetting) -> Caller:
    scopes = frozenset(role.scopes)
    return Caller(
        user_id=service_user_id(identity),
        roles=frozenset({"admin"}) if ADMIN in scopes else frozenset(),
        auth_method=AuthMethod.CLIENT_CERTIFICATE,
        scopes=scopes,
        service=identity,
        service_role=role.role,
    )


def check_service_call(method: str, caller: Caller) -> None:
    """PERMISSION_DENIED unless the service `caller` may call `method`."""
    name = method.rsplit("/", 1)[-1]
    if name not in SERVICE_METHODS:
        raise PermissionDenied(
            f"service identities cannot call {name[:100]}: it acts for a user or in a "
            "project; services may call " + ", ".join(sorted(SERVICE_METHODS)),
            "SERVICE_METHOD_NOT_ALLOWED",
        )
    missing = needed_scopes(name) - (caller.scopes or frozenset())
    if missing:
        raise PermissionDenied(
            f"the service role {caller.service_role} lacks the scope "
            f"{', '.join(sorted(missing))} for {name}",
            "SERVICE_SCOPE_MISSING",
            metadata={"missing_scopes": ",".join(sorted(missing))},
        )


def service_caller(
    services: ServiceIdentities | None, auth_context: Mapping[str, Iterable[bytes]], method: str
) -> Caller:
    """The Caller of a call that sent no token or API key: the service its client certificate
    proves, if that may call `method`. UNAUTHENTICATED without a client certificate identity
    or when it is not mapped; PERMISSION_DENIED when the service may not call `method`."""
    peer = PeerIdentities.of(auth_context) if services else PeerIdentities()
    if services is None or not peer:
        raise Unauthenticated("authentication required", "CREDENTIALS_MISSING")
    caller = services.caller(peer)
    check_service_call(method, caller)
    return caller

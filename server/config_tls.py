"""Settings of TLS and mutual TLS on the gRPC port, and of service identities; Settings
inherits them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic_settings import BaseSettings

from server.core.scopes import ALL_SCOPES

_DNS_NAME = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
_URI = re.compile(r"^[a-z][a-z0-9+.-]*://\S{1,2000}$")

SERVICE_IDENTITIES_HELP = (
    "JSON object mapping a client certificate's identity to a service role, e.g. "
    '{"spiffe://mesh.local/ns/ci/sa/builder": {"role": "ci-builder", "scopes": ["read"]}}: '
    "a key with '://' matches a URI SAN (a SPIFFE ID), any other key a DNS SAN; scopes are "
    f"{', '.join(ALL_SCOPES)}. A caller whose certificate carries a mapped identity and who "
    "sends no token or API key acts as that service (needs tls_client_ca_file)"
)


class ServiceRoleSetting(BaseModel):
    """What a service identity may do."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Annotated[
        str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    ]
    """A name for the role, shown in the audit log."""
    scopes: tuple[str, ...] = Field(min_length=1)

    @field_validator("scopes")
    @classmethod
    def _known_scopes(cls, scopes: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted({scope for scope in scopes if scope not in ALL_SCOPES})
        if unknown:
            raise ValueError(
                f"unknown scope {', '.join(map(repr, unknown))}; known: {', '.join(ALL_SCOPES)}"
            )
        return tuple(scope for scope in ALL_SCOPES if scope in scopes)


def is_uri_identity(identity: str) -> bool:
    """Whether a mapped identity names a URI SAN (else a DNS SAN)."""
    return "://" in identity


class TlsSettings(BaseSettings):
    # --- TLS on the gRPC port -------------------------------------------------------
    tls_cert_file: Path | None = Field(
        None,
        description="server certificate chain (PEM); with tls_key_file the gRPC port serves "
        "TLS only; both files are read again for new connections when they change",
    )
    tls_key_file: Path | None = Field(None, description="private key (PEM) of tls_cert_file")
    tls_client_ca_file: Path | None = Field(
        None,
        description="CA certificates (PEM) client certificates must chain to: mutual TLS, "
        "every connection must present a valid client certificate (grpc's Python server "
        "cannot ask for one without requiring it); reloaded when it changes",
    )
    tls_service_identities: dict[str, ServiceRoleSetting] = Field(
        default_factory=dict, description=SERVICE_IDENTITIES_HELP
    )

    @field_validator("tls_service_identities")
    @classmethod
    def _identities(cls, value: dict[str, ServiceRoleSetting]) -> dict[str, ServiceRoleSetting]:
        checked: dict[str, ServiceRoleSetting] = {}
        for identity, role in value.items():
            if is_uri_identity(identity):
                if not _URI.match(identity):
                    raise ValueError(f"{identity[:200]!r} is not a URI (e.g. spiffe://…)")
                checked[identity] = role
            else:
                name = identity.lower()
                if not _DNS_NAME.match(name):
                    raise ValueError(
                        f"{identity[:200]!r} is neither a URI (spiffe://…) nor a DNS name"
                    )
                checked[name] = role
        return checked

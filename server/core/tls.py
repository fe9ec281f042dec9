"""TLS and mutual TLS on the gRPC port: server credentials from the certificate, key and
client CA files of Settings, read again for new connections when the files change (mesh-
issued certificates rotate; connections already open keep the certificate they began with).

grpc calls the fetcher before each handshake; it compares the files' modification times
(a few stat calls) and hands grpc a new configuration only when one changed and the new
files are consistent. A half-written rotation (a new certificate beside the old key, or a
file that does not parse yet) keeps the last good configuration and is tried again on the
next handshake."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import grpc

from server.config import Settings
from server.core.keys import InsecureConfiguration

log = logging.getLogger(__name__)


class TlsConfigurationError(InsecureConfiguration):
    """The TLS settings or files do not make a working configuration; the server refuses
    to start."""


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    client_ca: Path | None

    @property
    def paths(self) -> tuple[Path, ...]:
        return (
            (self.cert, self.key)
            if self.client_ca is None
            else (self.cert, self.key, self.client_ca)
        )


def tls_files(settings: Settings) -> TlsFiles | None:
    """The files of a TLS port, None for a plaintext one; raises on inconsistent settings."""
    cert, key, ca = settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file
    if (cert is None) != (key is None):
        raise TlsConfigurationError("FORGE_TLS_CERT_FILE and FORGE_TLS_KEY_FILE go together")
    if settings.tls_service_identities and ca is None:
        raise TlsConfigurationError(
            "FORGE_TLS_SERVICE_IDENTITIES needs FORGE_TLS_CLIENT_CA_FILE: without mutual TLS "
            "no caller can prove a service identity"
        )
    if cert is None or key is None:
        if ca is not None:
            raise TlsConfigurationError(
                "FORGE_TLS_CLIENT_CA_FILE (mutual TLS) needs FORGE_TLS_CERT_FILE and "
                "FORGE_TLS_KEY_FILE"
            )
        return None
    return TlsFiles(cert, key, ca)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise TlsConfigurationError(f"cannot read the {what} {path}: {error.strerror}") from None


def load_configuration(files: TlsFiles) -> grpc.ServerCertificateConfiguration:
    """The configuration of the files as they are now; raises TlsConfigurationError when
    they cannot be read or do not belong together. Never puts key material in a message."""
    # Imported here: a plaintext server never loads cryptography (about 7 MiB resident).
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert_pem = _read(files.cert, "TLS certificate")
    key_pem = _read(files.key, "TLS private key")
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError:
        raise TlsConfigurationError(
            f"{files.cert} holds no PEM certificate (FORGE_TLS_CERT_FILE)"
        ) from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise TlsConfigurationError(
            f"{files.key} holds no unencrypted PEM private key (FORGE_TLS_KEY_FILE)"
        ) from None
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if chain[0].public_key().public_bytes(*raw) != key.public_key().public_bytes(*raw):
        raise TlsConfigurationError(
            f"the private key {files.key} does not belong to the certificate {files.cert}"
        )
    ca_pem: bytes | None = None
    if files.client_ca is not None:
        ca_pem = _read(files.client_ca, "client CA file")
        try:
            x509.load_pem_x509_certificates(ca_pem)
        except ValueError:
            raise TlsConfigurationError(
                f"{files.client_ca} holds no PEM certificate (FORGE_TLS_CLIENT_CA_FILE)"
            ) from None
    return grpc.ssl_server_certificate_configuration([(key_pem, cert_pem)], ca_pem)


def _stamp(paths: tuple[Path, ...]) -> tuple[tuple[int, int, int], ...] | None:
    """What tells a changed file: modification time, size and inode (a rename over it)."""
    try:
        return tuple((stat.st_mtime_ns, stat.st_size, stat.st_ino) for stat in map(os.stat, paths))
    except OSError:
        return None


class ReloadingCredentials:
    """Server credentials whose files are read again when they change."""

    def __init__(self, files: TlsFiles) -> None:
        self._files = files
        self._stamp = _stamp(files.paths)
        self._initial = load_configuration(files)

    def server_credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self._initial,
            # (grpc's stubs leave out the None that keeps the current configuration)
            cast("Callable[[], grpc.ServerCertificateConfiguration]", self._fetch),
            require_client_authentication=self._files.client_ca is not None,
        )

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """Called by grpc before each handshake: a new configuration, or None to keep the
        current one. Must not raise."""
        stamp = _stamp(self._files.paths)
        if stamp is None or stamp == self._stamp:
            return None
        try:
            configuration = load_configuration(self._files)
        except TlsConfigurationError as error:
            # Mid-rotation, most likely; the next handshake looks again.
            log.warning("TLS files changed but cannot be used yet", extra={"error": str(error)})
            return None
        except Exception:
            log.exception("TLS files changed but reading them failed")
            return None
        # Taken as is: a later change (even within the same mtime tick) changes the stamp.
        if _stamp(self._files.paths) != stamp:
            return None  # changed again while being read: look again next time
        self._stamp = stamp
        log.info(
            "TLS certificate files reloaded", extra={"files": [str(p) for p in self._files.paths]}
        )
        return configuration


def bind_port(server: grpc.aio.Server, address: str, settings: Settings) -> int:
    """Binds `address` for TLS when Settings configure it, else plaintext; the bound port
    (0 when binding failed)."""
    files = tls_files(settings)
    if files is None:
        return server.add_insecure_port(address)
    return server.add_secure_port(address, ReloadingCredentials(files).server_credentials())

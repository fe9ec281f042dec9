"""TLS and mutual TLS on the gRPC port, and service identities (SPIFFE ID / DNS SAN → a
service role), with certificates the tests make themselves (tests/support/certs.py)."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from forge.agents.v1 import agents_pb2, agents_pb2_grpc
from forge.auth.v1 import auth_pb2, auth_pb2_grpc
from forge.projects.v1 import projects_pb2, projects_pb2_grpc
from google.protobuf import field_mask_pb2
from pydantic import ValidationError
from pydantic_settings import SettingsError

from server.app import ForgeServer
from server.config import Settings
from server.core.tls import TlsConfigurationError, TlsFiles, load_configuration, tls_files
from tests.conftest import make_settings
from tests.support.accounts import register
from tests.support.certs import CertificateAuthority, Issued
from tests.support.rpc import error_info
from tests.support.testing_service import TEST_MODULES
from tests.support.waiting import eventually

BUILDER = "spiffe://mesh.local/ns/ci/sa/builder"
OPS = "spiffe://mesh.local/ns/ops/sa/console"
STRANGER = "spiffe://mesh.local/ns/ci/sa/stranger"
DNS_READER = "reader.ops.internal"
IDENTITIES = {
    BUILDER: {"role": "ci-builder", "scopes": ["read"]},
    OPS: {"role": "ops-console", "scopes": ["read", "admin"]},
    DNS_READER: {"role": "dns-reader", "scopes": ["read"]},
}


@dataclass
class TlsServer:
    app: ForgeServer
    ca: CertificateAuthority
    directory: Path

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.app.port}"

    def channel(self, client: Issued | None = None, trust: bytes | None = None) -> grpc.aio.Channel:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=trust or self.ca.cert,
            private_key=client.key if client else None,
            certificate_chain=client.cert if client else None,
        )
        return grpc.aio.secure_channel(self.target, credentials)


@asynccontextmanager
async def tls_server(
    database_url: str, directory: Path, *, mutual: bool, **settings: Any
) -> AsyncIterator[TlsServer]:
    ca = CertificateAuthority("Forge Mesh CA")
    cert, key = ca.server().write(directory, "server")
    if mutual:
        ca_file = directory / "clients-ca.pem"
        ca_file.write_bytes(ca.cert)
        settings.update(tls_client_ca_file=ca_file, tls_service_identities=IDENTITIES)
    app = ForgeServer(
        make_settings(
            database_url, directory / "data", tls_cert_file=cert, tls_key_file=key, **settings
        ),
        TEST_MODULES,
    )
    await app.start()
    try:
        yield TlsServer(app, ca, directory)
    finally:
        await app.stop(grace=0)


@pytest.fixture(scope="module")
async def mesh(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[TlsServer]:
    """A server with mutual TLS and the service identities above."""
    async with tls_server(database_url, tmp_path_factory.mktemp("mesh"), mutual=True) as server:
        yield server


async def _code_of(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call
    return refused.value.code()


async def test_a_mapped_spiffe_id_reaches_its_permitted_rpcs_only(mesh: TlsServer) -> None:
    builder = mesh.ca.issue("builder", uris=(BUILDER,))
    async with mesh.channel(builder) as channel:
        models = await agents_pb2_grpc.AgentServiceStub(channel).ListModels(
            agents_pb2.ListModelsRequest(), timeout=10
        )
        assert any(model.provider == "echo" for model in models.models)

        auth = auth_pb2_grpc.AuthServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await auth.GetSystemStats(auth_pb2.GetSystemStatsRequest(), timeout=10)
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error_info(denied.value).reason == "SERVICE_SCOPE_MISSING"
        assert error_info(denied.value).metadata["missing_scopes"] == "admin"

        # Services act in no project: project RPCs are refused, whatever the scopes.
        projects = projects_pb2_grpc.ProjectServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await projects.ListProjects(projects_pb2.ListProjectsRequest(), timeout=10)
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error_info(denied.value).reason == "SERVICE_METHOD_NOT_ALLOWED"


async def test_a_mapped_dns_name_is_a_service_identity_too(mesh: TlsServer) -> None:
    reader = mesh.ca.issue("reader", dns_names=(DNS_READER.upper(),))
    async with mesh.channel(reader) as channel:
        response = await agents_pb2_grpc.AgentServiceStub(channel).ListModels(
            agents_pb2.ListModelsRequest(), timeout=10
        )
    assert response.models


async def test_an_admin_service_administers_users_and_the_audit_log_names_it(
    mesh: TlsServer,
) -> None:
    ops = mesh.ca.issue("ops", uris=(OPS,))
    stranger = mesh.ca.issue("stranger", uris=(STRANGER,))
    async with mesh.channel(stranger) as user_channel, mesh.channel(ops) as ops_channel:
        # A user signs up and in over mutual TLS (any valid client certificate): the
        # user's token decides who calls, not the certificate.
        user = await register(user_channel)
        user_auth = auth_pb2_grpc.AuthServiceStub(user_channel)
        me = await user_auth.GetCurrentUser(
            auth_pb2.GetCurrentUserRequest(), metadata=user.metadata, timeout=10
        )
        assert me.id == user.user_id

        auth = auth_pb2_grpc.AuthServiceStub(ops_channel)
        stats = await auth.GetSystemStats(auth_pb2.GetSystemStatsRequest(), timeout=10)
        assert stats.user_count >= 1
        disabled = await auth.UpdateUser(
            auth_pb2.UpdateUserRequest(
                user=auth_pb2.User(id=user.user_id, disabled=True),
                update_mask=field_mask_pb2.FieldMask(paths=["disabled"]),
            ),
            timeout=10,
        )
        assert disabled.disabled
        events = await auth.ListAuditEvents(
            auth_pb2.ListAuditEventsRequest(
                user_id=user.user_id, action=auth_pb2.AUDIT_ACTION_USER_DISABLED
            ),
            timeout=10,
        )
        assert [dict(e.metadata) for e in events.audit_events] == [
            {"service": OPS, "service_role": "ops-console"}
        ]
        assert events.audit_events[0].actor_user_id == ""
        assert events.audit_events[0].subject_user_id == user.user_id

        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await user_auth.GetCurrentUser(
                auth_pb2.GetCurrentUserRequest(), metadata=user.metadata, timeout=10
            )
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_an_unmapped_identity_is_unauthenticated_with_a_reason(mesh: TlsServer) -> None:
    stranger = mesh.ca.issue("stranger", uris=(STRANGER,), dns_names=("stranger.ci",))
    async with mesh.channel(stranger) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await agents_pb2_grpc.AgentServiceStub(channel).ListModels(
                agents_pb2.ListModelsRequest(), timeout=10
            )
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_info(refused.value).reason == "SERVICE_IDENTITY_UNKNOWN"
    assert STRANGER in (refused.value.details() or "")


@pytest.mark.parametrize("client", ["none", "other CA", "expired"])
async def test_a_client_without_a_valid_certificate_cannot_connect(
    mesh: TlsServer, client: str
) -> None:
    certificate = {
        "none": None,
        "other CA": CertificateAuthority("Some Other CA").issue("builder", uris=(BUILDER,)),
        "expired": mesh.ca.issue("builder", uris=(BUILDER,), expired=True),
    }[client]
    async with mesh.channel(certificate) as channel:
        stub = agents_pb2_grpc.AgentServiceStub(channel)
        code = await _code_of(stub.ListModels(agents_pb2.ListModelsRequest(), timeout=10))
    assert code == grpc.StatusCode.UNAVAILABLE


async def test_a_plaintext_client_cannot_call_a_tls_port(mesh: TlsServer) -> None:
    async with grpc.aio.insecure_channel(mesh.target) as channel:
        stub = agents_pb2_grpc.AgentServiceStub(channel)
        code = await _code_of(stub.ListModels(agents_pb2.ListModelsRequest(), timeout=10))
    assert code == grpc.StatusCode.UNAVAILABLE


async def test_tls_without_client_certificates_serves_users_and_picks_up_new_certificates(
    database_url: str, tmp_path: Path
) -> None:
    async with (
        tls_server(database_url, tmp_path, mutual=False) as server,
        server.channel() as channel,
    ):
        user = await register(channel)
        auth = auth_pb2_grpc.AuthServiceStub(channel)
        me = await auth.GetCurrentUser(
            auth_pb2.GetCurrentUserRequest(), metadata=user.metadata, timeout=10
        )
        assert me.id == user.user_id
        # Without a token there is no caller (no client certificate to go by).
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await auth.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), timeout=10)
        assert error_info(refused.value).reason == "CREDENTIALS_MISSING"

        # The mesh rotates the server certificate, to one of a new CA. Half-way (the new
        # certificate beside the old key) new connections still get the old one...
        new_ca = CertificateAuthority("Forge Mesh CA 2")
        staged_cert, staged_key = new_ca.server().write(tmp_path, "staged")
        os.replace(staged_cert, tmp_path / "server.crt")
        async with server.channel() as during:
            still = await auth_pb2_grpc.AuthServiceStub(during).GetCurrentUser(
                auth_pb2.GetCurrentUserRequest(), metadata=user.metadata, timeout=10
            )
            assert still.id == user.user_id
        # ...and once the key is there too, they get the new one; the open one goes on.
        os.replace(staged_key, tmp_path / "server.key")

        async def new_certificate_served() -> bool:
            async with server.channel(trust=new_ca.cert) as fresh:
                try:
                    await auth_pb2_grpc.AuthServiceStub(fresh).GetCurrentUser(
                        auth_pb2.GetCurrentUserRequest(), metadata=user.metadata, timeout=5
                    )
                except grpc.aio.AioRpcError as error:
                    if error.code() != grpc.StatusCode.UNAVAILABLE:
                        raise
                    return False
            return True

        await eventually(new_certificate_served)
        async with server.channel(trust=server.ca.cert) as old:
            stub = auth_pb2_grpc.AuthServiceStub(old)
            code = await _code_of(
                stub.GetCurrentUser(
                    auth_pb2.GetCurrentUserRequest(), metadata=user.metadata, timeout=10
                )
            )
        assert code == grpc.StatusCode.UNAVAILABLE
        again = await auth.GetCurrentUser(
            auth_pb2.GetCurrentUserRequest(), metadata=user.metadata, timeout=10
        )
        assert again.id == user.user_id


def _settings_error(monkeypatch: pytest.MonkeyPatch, identities: str) -> str:
    monkeypatch.setenv("FORGE_TLS_SERVICE_IDENTITIES", identities)
    with pytest.raises((ValidationError, SettingsError)) as refused:
        Settings()
    return str(refused.value)


def test_a_malformed_identity_mapping_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "tls_service_identities" in _settings_error(monkeypatch, '{"spiffe://a/b": ')
    unknown_scope = json.dumps({BUILDER: {"role": "b", "scopes": ["read", "root"]}})
    assert "unknown scope 'root'" in _settings_error(monkeypatch, unknown_scope)
    projects = json.dumps({BUILDER: {"role": "b", "scopes": ["read"], "projects": ["p"]}})
    assert "projects" in _settings_error(monkeypatch, projects)
    no_scopes = json.dumps({BUILDER: {"role": "b", "scopes": []}})
    assert "scopes" in _settings_error(monkeypatch, no_scopes)
    not_a_name = json.dumps({"not a name": {"role": "b", "scopes": ["read"]}})
    assert "neither a URI" in _settings_error(monkeypatch, not_a_name)


def test_inconsistent_tls_settings_refuse_to_start(tmp_path: Path) -> None:
    ca = CertificateAuthority()
    cert, key = ca.server().write(tmp_path, "server")
    with pytest.raises(TlsConfigurationError, match="needs FORGE_TLS_CLIENT_CA_FILE"):
        tls_files(
            Settings(
                tls_cert_file=cert,
                tls_key_file=key,
                tls_service_identities=IDENTITIES,
            )
        )
    with pytest.raises(TlsConfigurationError, match="go together"):
        tls_files(Settings(tls_cert_file=cert))
    _, other_key = ca.server().write(tmp_path, "other")
    with pytest.raises(TlsConfigurationError, match="does not belong to the certificate"):
        load_configuration(TlsFiles(cert, other_key, None))
    with pytest.raises(TlsConfigurationError, match="cannot read the client CA file"):
        load_configuration(TlsFiles(cert, key, tmp_path / "missing.pem"))

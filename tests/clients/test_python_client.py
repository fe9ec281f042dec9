"""The Python client (clients/python, forge_client) against the real server: errors with
their details, credentials and refresh, deadlines, retries, and the streaming helpers."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from forge_client import (
    AsyncForge,
    Code,
    Forge,
    ForgeError,
    RetryPolicy,
    agents,
    auth,
    kind,
    projects,
)

from server.app import ForgeServer
from server.auth.tokens import AccessTokens
from server.core.keys import server_secret
from tests.clients.proxy import Proxy

PASSWORD = "Passw0rd-client"
FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)
GOAL = (
    "Write a program that greets.\n\n```python\n# file: greet.py\n"
    'print("hello from the run")\n```\n'
)


def email() -> str:
    return f"py-{uuid.uuid4().hex[:10]}@example.com"


def address(forge: ForgeServer) -> str:
    return f"127.0.0.1:{forge.port}"


async def signed_in(forge: ForgeServer, **options: object) -> AsyncForge:
    client = AsyncForge.connect(address(forge), **options)  # type: ignore[arg-type]
    await client.register(email(), PASSWORD, "Py")
    return client


async def test_a_failed_call_raises_forge_error_with_reason_and_request_id(
    forge: ForgeServer,
) -> None:
    taken = email()
    async with AsyncForge.connect(address(forge)) as client:
        await client.register(taken, PASSWORD)
        with pytest.raises(ForgeError) as raised:
            await client.register(taken, PASSWORD)
    error = raised.value
    assert error.code == Code.ALREADY_EXISTS
    assert error.reason == "EMAIL_TAKEN"
    assert error.domain
    assert error.request_id
    assert "EMAIL_TAKEN" in str(error)


async def test_field_violations_name_the_bad_fields(forge: ForgeServer) -> None:
    async with AsyncForge.connect(address(forge)) as client:
        with pytest.raises(ForgeError) as raised:
            await client.auth.register(auth.RegisterRequest(email="not an email", password="x"))
    assert raised.value.code == Code.INVALID_ARGUMENT
    fields = {violation.field for violation in raised.value.field_violations}
    assert "email" in fields


async def test_async_client_carries_credentials_and_api_keys(forge: ForgeServer) -> None:
    async with await signed_in(forge) as client:
        me = await client.auth.get_current_user(auth.GetCurrentUserRequest(), timeout=5)
        key = await client.auth.create_api_key(auth.CreateApiKeyRequest(name="ci"))
    async with AsyncForge.connect(address(forge), api_key=key.secret) as by_key:
        assert (await by_key.auth.get_current_user(auth.GetCurrentUserRequest())).id == me.id
    async with AsyncForge.connect(address(forge)) as anonymous:
        with pytest.raises(ForgeError) as raised:
            await anonymous.auth.get_current_user(auth.GetCurrentUserRequest())
    assert raised.value.code == Code.UNAUTHENTICATED


async def test_sync_client_carries_credentials_and_deadlines(forge: ForgeServer) -> None:
    login = email()

    def calls() -> tuple[str, str, Code]:
        with Forge.connect(address(forge)) as client:
            client.register(login, PASSWORD, "Sync")
            me = client.auth.get_current_user(auth.GetCurrentUserRequest())
            project = client.with_options(timeout=5).projects.create_project(
                projects.CreateProjectRequest(project=projects.Project(name="sync"))
            )
            assert project.name == "sync"
            # A call still running when its deadline passes fails as DEADLINE_EXCEEDED: an
            # answer of 200 words, which the echo model paces over seconds, given 0.3 s (a
            # stream's deadline is its own option).
            # (Not a unary call given a deadline already past: a server this close can
            # answer one before gRPC's deadline timer fires.)
            conversation = client.agents.create_conversation(
                agents.CreateConversationRequest(project_id=project.id)
            )
            late = client.with_options(stream_timeout=0.3)
            seen: list[str] = []
            try:
                for event in late.chat(conversation.id, " ".join(["word"] * 200)):
                    seen.append(kind(event))
            except ForgeError as error:
                assert seen[0] == "started"
                assert "completed" not in seen
                return me.email, project.id, error.code
            raise AssertionError(f"the answer outlasted its deadline: {seen[-3:]}")

    me, project_id, late = await asyncio.to_thread(calls)
    assert me == login
    assert project_id
    assert late == Code.DEADLINE_EXCEEDED


async def test_an_expired_access_token_is_renewed_with_the_refresh_token(
    forge: ForgeServer,
) -> None:
    async with AsyncForge.connect(address(forge)) as first:
        signed_up = await first.auth.register(
            auth.RegisterRequest(email=email(), password=PASSWORD)
        )
    assert signed_up.user is not None
    assert signed_up.tokens is not None
    expired, _ = AccessTokens(
        server_secret(forge.settings),
        forge.settings.jwt_issuer,
        forge.settings.jwt_audience,
        timedelta(seconds=-60),
    ).issue(uuid.UUID(signed_up.user.id), [], uuid.UUID(signed_up.tokens.session_id))
    renewed: list[str] = []

    async with AsyncForge.connect(
        address(forge), token=expired, refresh_token=signed_up.tokens.refresh_token
    ) as client:
        client.credentials.on_tokens = lambda tokens: renewed.append(tokens.access_token)
        me = await client.auth.get_current_user(auth.GetCurrentUserRequest())
    assert me.id == signed_up.user.id
    assert len(renewed) == 1
    assert renewed[0] != expired

    def sync_call() -> str:
        with Forge.connect(
            address(forge), token=expired, refresh_token=renewed_refresh[0]
        ) as client:
            return client.auth.get_current_user(auth.GetCurrentUserRequest()).id

    renewed_refresh = [client.credentials.refresh_token]
    assert await asyncio.to_thread(sync_call) == signed_up.user.id

    async with AsyncForge.connect(address(forge), token=expired) as no_refresh:
        with pytest.raises(ForgeError) as raised:
            await no_refresh.auth.get_current_user(auth.GetCurrentUserRequest())
    assert raised.value.reason == "TOKEN_EXPIRED"


async def test_unavailable_is_retried_for_reads_and_creates_only(forge: ForgeServer) -> None:
    async with await signed_in(forge, retry=FAST_RETRY) as direct:
        project = await direct.projects.create_project(
            projects.CreateProjectRequest(project=projects.Project(name="retried"))
        )
        tokens = direct.credentials

        async with (
            Proxy(forge.port, refuse_first=2) as proxy,
            AsyncForge.connect(proxy.address, credentials=tokens, retry=FAST_RETRY) as client,
        ):
            got = await client.projects.get_project(
                projects.GetProjectRequest(project_id=project.id)
            )
        assert got.name == "retried"
        assert proxy.connections == 3

        # A Create carries an automatic request_id, so it is retried, and happens once.
        async with (
            Proxy(forge.port, refuse_first=1) as proxy,
            AsyncForge.connect(proxy.address, credentials=tokens, retry=FAST_RETRY) as client,
        ):
            await client.projects.create_project(
                projects.CreateProjectRequest(project=projects.Project(name="once"))
            )
        listed = await direct.projects.list_projects(projects.ListProjectsRequest())
        assert [p.name for p in listed.projects].count("once") == 1

        # An update is not idempotent: one attempt, then the error.
        async with (
            Proxy(forge.port, refuse_first=1) as proxy,
            AsyncForge.connect(proxy.address, credentials=tokens, retry=FAST_RETRY) as client,
        ):
            with pytest.raises(ForgeError) as raised:
                await client.projects.update_project(
                    projects.UpdateProjectRequest(
                        project=projects.Project(id=project.id, name="renamed")
                    )
                )
        assert raised.value.code == Code.UNAVAILABLE
        assert proxy.connections == 1


async def test_chat_streams_tokens(forge: ForgeServer) -> None:
    async with await signed_in(forge) as client:
        project = await client.projects.create_project(
            projects.CreateProjectRequest(project=projects.Project(name="chat"))
        )
        conversation = await client.agents.create_conversation(
            agents.CreateConversationRequest(project_id=project.id)
        )
        events = [event async for event in client.chat(conversation.id, "hello there")]
    kinds = [kind(event) for event in events]
    assert kinds.count("delta") > 1
    assert kinds[-1] == "completed"
    assert [event.seq for event in events] == list(range(1, len(events) + 1))


async def test_watch_run_resumes_after_a_dropped_connection_without_repeats(
    forge: ForgeServer,
) -> None:
    async with await signed_in(forge) as direct:
        project = await direct.projects.create_project(
            projects.CreateProjectRequest(project=projects.Project(name="runs"))
        )
        run = await direct.agents.start_run(
            agents.StartRunRequest(
                project_id=project.id,
                agent_id="coder",
                goal=GOAL,
                approval_mode=agents.ApprovalMode.ASK_BEFORE_BASH,
            )
        )
        seen: list[agents.RunEvent] = []
        async with (
            Proxy(forge.port) as proxy,
            AsyncForge.connect(
                proxy.address, credentials=direct.credentials, retry=FAST_RETRY
            ) as watcher,
        ):
            dropped = False
            async for event in watcher.watch_run(run.id):
                seen.append(event)
                waiting = agents.RunStatus.WAITING_FOR_APPROVAL
                status = event.status.status if event.status is not None else None
                if not dropped and status == waiting:
                    dropped = True
                    proxy.drop()
                    pending = await direct.agents.get_run(agents.GetRunRequest(run_id=run.id))
                    assert pending.pending_tool_call is not None
                    await direct.agents.approve_tool_call(
                        agents.ApproveToolCallRequest(
                            run_id=run.id,
                            tool_call_id=pending.pending_tool_call.id,
                            approve=True,
                        )
                    )
        assert dropped
        assert proxy.connections >= 2
        assert [event.seq for event in seen] == list(range(1, len(seen) + 1))
        assert kind(seen[-1]) == "completed"

        # Resuming from a seq replays only what came after it.
        later = [event async for event in direct.watch_run(run.id, after_seq=seen[-3].seq)]
        assert [event.seq for event in later] == [event.seq for event in seen[-2:]]

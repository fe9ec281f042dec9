"""The generated betterproto2 stubs (forge_client._proto, re-exported as forge_client.auth,
.projects, …) talk to the real server as they are, without the Forge client objects."""

from __future__ import annotations

import asyncio
import uuid

import grpc
from forge_client import agents, auth, projects
from grpclib.client import Channel

from server.app import ForgeServer


async def test_async_grpclib_client_unary_and_stream(forge: ForgeServer) -> None:
    channel = Channel("127.0.0.1", forge.port)
    try:
        signed_up = await auth.AuthServiceStub(channel).register(
            auth.RegisterRequest(
                email=f"client-{uuid.uuid4().hex[:8]}@example.com",
                password="Passw0rd-client",
                display_name="Client",
            ),
            timeout=10,
        )
        assert signed_up.tokens is not None
        metadata = {"authorization": f"Bearer {signed_up.tokens.access_token}"}
        project = await projects.ProjectServiceStub(channel).create_project(
            projects.CreateProjectRequest(project=projects.Project(name="from betterproto2")),
            metadata=metadata,
            timeout=10,
        )
        assert project.name == "from betterproto2"
        agent_stub = agents.AgentServiceStub(channel)
        conversation = await agent_stub.create_conversation(
            agents.CreateConversationRequest(
                project_id=project.id, conversation=agents.Conversation(title="client")
            ),
            metadata=metadata,
            timeout=10,
        )
        events = [
            event
            async for event in agent_stub.chat(
                agents.ChatRequest(conversation_id=conversation.id, content="hello there"),
                metadata=metadata,
                timeout=30,
            )
        ]
        assert [event.seq for event in events] == list(range(1, len(events) + 1))
        assert events[-1].completed is not None
        assert "".join(event.delta.text for event in events if event.delta is not None)
    finally:
        channel.close()


async def test_sync_grpcio_client_unary(forge: ForgeServer) -> None:
    email = f"sync-{uuid.uuid4().hex[:8]}@example.com"

    def call() -> str:
        with grpc.insecure_channel(f"127.0.0.1:{forge.port}") as channel:
            stub = auth.AuthServiceSyncStub(channel)
            stub.register(
                auth.RegisterRequest(email=email, password="Passw0rd-sync", display_name="Sync")
            )
            signed_in = stub.login(auth.LoginRequest(email=email, password="Passw0rd-sync"))
            assert signed_in.user is not None
            return signed_in.user.email

    assert await asyncio.to_thread(call) == email

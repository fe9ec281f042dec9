"""Artifacts extracted from chat answers: the answer listener itself (given CompletedAnswers),
and the whole path through AgentService.Chat with the offline echo model."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from forge.agents.v1 import agents_pb2, agents_pb2_grpc
from forge.artifacts.v1 import artifacts_pb2

from server.artifacts.chat import ChatExtraction
from server.artifacts.core import ArtifactsCore, Limits
from server.artifacts.listener import ChatArtifactListener
from server.artifacts.service import ArtifactAnswerListener
from server.artifacts.storage.local import LocalBlobStore
from server.config import Settings
from server.core.hooks import CompletedAnswer
from server.db.engine import make_engine, make_session_factory
from tests.artifacts.service_support import DEADLINE, Team, new_team, sha256, stub

TWO_FILES = """Here is a small package.

The helper:

```python
# file: util.py
def double(x: int) -> int:
    return 2 * x
```

And the entry point, which uses it:

```python
# file: app.py
from util import double

print(double(21))
```
"""

APP_REWRITTEN = """Sure, `app.py` now reads its input:

```python
# file: app.py
import sys

from util import double

print(double(int(sys.argv[1])))
```
"""


@pytest.fixture
async def team(channel: grpc.aio.Channel) -> Team:
    return await new_team(channel)


@pytest.fixture
async def listener(database_url: str, tmp_path: Path) -> AsyncIterator[ArtifactAnswerListener]:
    engine = make_engine(database_url, pool_size=2, max_overflow=0)
    blobs = LocalBlobStore(tmp_path / "blobs")
    await blobs.start()
    core = ArtifactsCore(make_session_factory(engine), blobs, Limits.from_settings(Settings()))
    try:
        yield ArtifactAnswerListener(ChatArtifactListener(ChatExtraction(core)))
    finally:
        await blobs.close()
        await engine.dispose()


def answer(team: Team, conversation: uuid.UUID, text: str) -> CompletedAnswer:
    return CompletedAnswer(
        project_id=uuid.UUID(team.project_id),
        conversation_id=conversation,
        message_id=uuid.uuid4(),
        user_id=uuid.UUID(team.editor.user_id),
        text=text,
    )


async def test_each_code_block_becomes_an_artifact_and_a_rewrite_a_version(
    listener: ArtifactAnswerListener, channel: grpc.aio.Channel, team: Team
) -> None:
    conversation = uuid.uuid4()
    first = answer(team, conversation, TWO_FILES)
    made = list(await listener.answer_completed(first))

    assert [a.filename for a in made] == ["util.py", "app.py"]
    for artifact in made:
        assert artifact.origin == artifacts_pb2.ARTIFACT_ORIGIN_CHAT
        assert (artifact.conversation_id, artifact.message_id) == (
            str(conversation),
            str(first.message_id),
        )
        assert (artifact.language, artifact.kind) == ("python", artifacts_pb2.ARTIFACT_KIND_CODE)
        assert artifact.content_type == "text/x-python"
        assert artifact.latest_version == 1
        assert artifact.creator_user_id == team.editor.user_id
    assert made[0].title == "The helper"
    assert made[1].sha256 == sha256(b"from util import double\n\nprint(double(21))\n")

    second = answer(team, conversation, APP_REWRITTEN)
    rewritten = list(await listener.answer_completed(second))
    assert [a.id for a in rewritten] == [made[1].id]  # the same artifact, not a new one
    assert rewritten[0].latest_version == 2
    assert rewritten[0].message_id == str(second.message_id)

    versions = await stub(channel).ListArtifactVersions(
        artifacts_pb2.ListArtifactVersionsRequest(artifact_id=made[1].id),
        metadata=team.viewer.metadata,
        timeout=DEADLINE,
    )
    assert [(v.version, v.message_id) for v in versions.versions] == [
        (1, str(first.message_id)),
        (2, str(second.message_id)),
    ]
    listed = await stub(channel).ListArtifacts(
        artifacts_pb2.ListArtifactsRequest(
            project_id=team.project_id, conversation_id=str(conversation)
        ),
        metadata=team.viewer.metadata,
        timeout=DEADLINE,
    )
    assert sorted(a.filename for a in listed.artifacts) == ["app.py", "util.py"]

    # The same answer again changes nothing; another conversation gets its own artifacts.
    again = list(await listener.answer_completed(answer(team, conversation, APP_REWRITTEN)))
    assert [(a.id, a.latest_version) for a in again] == [(made[1].id, 2)]
    elsewhere = list(await listener.answer_completed(answer(team, uuid.uuid4(), APP_REWRITTEN)))
    assert elsewhere[0].id != made[1].id
    assert elsewhere[0].latest_version == 1


THREE_PIECES_OF_ONE_FILE = """Let's build `shop.py` step by step. The model:

```python
# file: shop.py
from dataclasses import dataclass


@dataclass
class Item:
    name: str
    price: int
```

The total, which needs `sum` over items:

```python
# file: shop.py
from dataclasses import dataclass


def total(items: list[Item]) -> int:
    return sum(item.price for item in items)
```

And running it:

```python
# file: shop.py
if __name__ == "__main__":
    print(total([Item("tea", 3), Item("cake", 4)]))
```
"""


async def test_three_blocks_of_one_file_make_one_consolidated_artifact(
    listener: ArtifactAnswerListener, team: Team
) -> None:
    made = list(
        await listener.answer_completed(answer(team, uuid.uuid4(), THREE_PIECES_OF_ONE_FILE))
    )

    assert [(a.filename, a.latest_version, a.title) for a in made] == [
        ("shop.py", 1, "Let's build shop.py step by step. The model")
    ]
    assert made[0].sha256 == sha256(SHOP_PY.encode())
    namespace: dict[str, object] = {"__name__": "__main__"}
    exec(compile(SHOP_PY, "shop.py", "exec"), namespace)  # noqa: S102 - the test's own text
    total, item = namespace["total"], namespace["Item"]
    assert callable(total)
    assert callable(item)
    assert total([item("bread", 2)]) == 2


SHOP_PY = """from dataclasses import dataclass


@dataclass
class Item:
    name: str
    price: int


def total(items: list[Item]) -> int:
    return sum(item.price for item in items)


if __name__ == "__main__":
    print(total([Item("tea", 3), Item("cake", 4)]))
"""


async def test_answers_without_code_make_nothing(
    listener: ArtifactAnswerListener, team: Team
) -> None:
    assert await listener.answer_completed(answer(team, uuid.uuid4(), "Just prose.")) == []
    # A project that is gone: the answer listener reports nothing rather than failing the chat.
    orphan = CompletedAnswer(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), TWO_FILES)
    assert await listener.answer_completed(orphan) == []


async def chat(
    channel: grpc.aio.Channel, team: Team, conversation_id: str, content: str
) -> list[agents_pb2.ChatEvent]:
    call = agents_pb2_grpc.AgentServiceStub(channel).Chat(
        agents_pb2.ChatRequest(conversation_id=conversation_id, content=content, model="echo"),
        metadata=team.editor.metadata,
        timeout=DEADLINE,
    )
    return [event async for event in call]


async def test_chat_answers_stream_their_artifacts(channel: grpc.aio.Channel, team: Team) -> None:
    agents = agents_pb2_grpc.AgentServiceStub(channel)
    try:
        conversation = await agents.CreateConversation(
            agents_pb2.CreateConversationRequest(
                project_id=team.project_id, conversation=agents_pb2.Conversation(model="echo")
            ),
            metadata=team.editor.metadata,
            timeout=DEADLINE,
        )
        events = await chat(
            channel, team, conversation.id, "Write the code in two files: app.py and util.py"
        )
    except grpc.aio.AioRpcError as error:
        if error.code() == grpc.StatusCode.UNIMPLEMENTED:
            pytest.skip("AgentService.Chat is not implemented yet")
        raise
    kinds = [event.WhichOneof("event") for event in events]
    assert kinds[-1] == "completed"
    artifacts = [event.artifact for event in events if event.HasField("artifact")]
    assert sorted(a.filename for a in artifacts) == ["app.py", "util.py"]
    assert kinds[-3:] == ["artifact", "artifact", "completed"]
    assert {a.conversation_id for a in artifacts} == {conversation.id}
    assert {a.message_id for a in artifacts} == {events[0].started.assistant_message_id}
    app = next(a for a in artifacts if a.filename == "app.py")

    events = await chat(channel, team, conversation.id, "Now rewrite app.py: same code, new output")
    rewritten = [event.artifact for event in events if event.HasField("artifact")]
    assert [(a.id, a.latest_version) for a in rewritten] == [(app.id, 2)]
    listed = await stub(channel).ListArtifacts(
        artifacts_pb2.ListArtifactsRequest(
            project_id=team.project_id, conversation_id=conversation.id
        ),
        metadata=team.viewer.metadata,
        timeout=DEADLINE,
    )
    assert len(listed.artifacts) == 2
    content = await stub(channel).GetArtifactContent(
        artifacts_pb2.GetArtifactContentRequest(artifact_id=app.id, version=2),
        metadata=team.viewer.metadata,
        timeout=DEADLINE,
    )
    assert b"same code, new output" in content.data

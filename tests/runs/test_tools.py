"""The run tools without a server: input validation, the registry's specs, and the editor's
text logic over a dict of files (a stand-in for the sandbox's file layer; everything that
runs in Docker is tested against the real ports in test_tools_ports.py)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from server.agents.runs.events import RunEvent
from server.agents.runs.tool_rpcs import ToolRpcs
from server.agents.runs.tools import (
    TOOL_NAMES,
    ToolContext,
    ToolInputError,
    ToolOutcome,
    ToolRegistry,
)
from server.agents.runs.tools.output import OutputCollector, clip
from server.config import Settings
from server.core.context import CallContext, Caller, bind_call
from server.core.errors import NotFound, Unauthenticated
from server.core.hooks import Hooks
from server.core.ports import ExecPortEvent

SETTINGS = Settings(run_bash_timeout_seconds=60, run_tool_output_chars=400)
REGISTRY = ToolRegistry(SETTINGS)


class FileDouble:
    """The sandbox port's read_file/write_file over a dict (no exec: the editor's plain
    file commands need none)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    async def ensure_sandbox(
        self, caller: Caller, project_id: uuid.UUID, sandbox_id: uuid.UUID | None
    ) -> uuid.UUID:
        raise AssertionError("not used")

    def exec(
        self, caller: Caller, sandbox_id: uuid.UUID, command: str, timeout: timedelta
    ) -> AsyncGenerator[ExecPortEvent, None]:
        raise AssertionError("not used")

    async def read_file(self, caller: Caller, sandbox_id: uuid.UUID, path: str) -> bytes:
        if path not in self.files:
            raise NotFound(f"{path} does not exist", "FILE_NOT_FOUND")
        return self.files[path]

    async def write_file(
        self, caller: Caller, sandbox_id: uuid.UUID, path: str, content: bytes
    ) -> None:
        self.files[path] = content

    async def read_tree(
        self,
        caller: Caller,
        project_id: uuid.UUID,
        sandbox_id: uuid.UUID,
        path: str,
        *,
        max_files: int,
        max_bytes: int,
    ) -> dict[str, bytes]:
        raise AssertionError("not used")


@dataclass
class Harness:
    files: FileDouble = field(default_factory=FileDouble)
    events: list[RunEvent] = field(default_factory=list)
    task_id: uuid.UUID | None = None

    def context(self) -> ToolContext:
        hooks = Hooks()
        hooks.sandbox.provide(self.files)

        async def sandbox() -> uuid.UUID:
            return uuid.UUID(int=1)

        async def emit(event: RunEvent) -> None:
            self.events.append(event)

        return ToolContext(
            caller=Caller(user_id=uuid.uuid4()),
            project_id=uuid.uuid4(),
            run_id=uuid.uuid4(),
            task_id=self.task_id,
            sandbox=sandbox,
            ports=hooks,
            emit=emit,
            settings=SETTINGS,
        )

    async def call(self, name: str, **arguments: Any) -> ToolOutcome:
        parsed = REGISTRY.parse(name, json.dumps(arguments))
        return await REGISTRY.run(self.context(), name, parsed)


def invalid(name: str, arguments: object) -> str:
    with pytest.raises(ToolInputError) as caught:
        REGISTRY.parse(name, arguments if isinstance(arguments, str) else json.dumps(arguments))
    return caught.value.message


# --- the registry ----------------------------------------------------------------------


def test_the_registry_offers_the_five_tools_with_object_schemas() -> None:
    assert REGISTRY.names == TOOL_NAMES
    specs = REGISTRY.specs(["finish", "bash", "nope"])
    assert [spec.name for spec in specs] == ["finish", "bash"]
    for described in REGISTRY.describe():
        assert described.input_schema["type"] == "object"
        assert described.description
        json.dumps(described.input_schema)  # serialisable for ListRunTools
    writes = {described.name: described.writes for described in REGISTRY.describe()}
    assert writes == {
        "bash": True,
        "editor": True,
        "save_artifact": True,
        "update_task": True,
        "finish": False,
    }


def test_writes_depends_on_the_editor_command() -> None:
    assert not REGISTRY.writes("editor", {"command": "view", "path": "a.py"})
    for command in ("create", "str_replace", "insert"):
        assert REGISTRY.writes("editor", {"command": command, "path": "a.py"})
    assert REGISTRY.writes("bash", {"command": "ls"})
    assert not REGISTRY.writes("finish", {"answer": "done"})


def test_bad_input_names_the_field_and_the_problem() -> None:
    assert "no tool named 'teleport'" in invalid("teleport", {})
    assert "not valid JSON" in invalid("bash", '{"command": ')
    assert "must be a JSON object" in invalid("bash", "[1, 2]")
    assert "'command' is a required property" in invalid("bash", {})
    message = invalid("bash", {"command": "ls", "timeout_seconds": 61})
    assert "timeout_seconds" in message
    assert "60" in message
    message = invalid("editor", {"command": "delete", "path": "a"})
    assert message.startswith("invalid input for editor: command:")
    assert "'delete' is not one of" in message
    assert "'colour' was unexpected" in invalid("finish", {"answer": "x", "colour": "red"})
    message = invalid("editor", {"command": "view", "path": 3, "insert_line": -1})
    assert "path: 3 is not of type 'string'" in message
    assert "insert_line: -1 is less than the minimum of 0" in message


def test_fields_needed_together_are_checked() -> None:
    assert "create needs file_text" in invalid("editor", {"command": "create", "path": "a"})
    assert "str_replace needs old_str" in invalid(
        "editor", {"command": "str_replace", "path": "a", "new_str": "b"}
    )
    assert "insert needs insert_line and new_str" in invalid(
        "editor", {"command": "insert", "path": "a"}
    )
    assert "outside /workspace" in invalid("editor", {"command": "view", "path": "/etc/passwd"})
    assert "'..'" in invalid("editor", {"command": "view", "path": "a/../../etc"})
    assert "view_range is only for the view command" in invalid(
        "editor", {"command": "create", "path": "a", "file_text": "", "view_range": [1, 2]}
    )
    assert "numbered from 1" in invalid(
        "editor", {"command": "view", "path": "a", "view_range": [0, 2]}
    )
    assert "either path" in invalid("save_artifact", {"path": "a.py", "content": "x"})
    assert "either path" in invalid("save_artifact", {"title": "t"})
    assert "content needs a filename" in invalid("save_artifact", {"content": "x"})
    assert "without directories" in invalid("save_artifact", {"content": "x", "filename": "a/b.md"})
    assert "a status, a note or both" in invalid("update_task", {})
    assert "is not one of" in invalid("update_task", {"status": "archived"})
    assert "answer" in invalid("finish", {})


def test_empty_arguments_mean_an_empty_object() -> None:
    assert "'answer' is a required property" in invalid("finish", "")


# --- the editor over a dict of files ---------------------------------------------------


async def test_create_then_view_with_line_numbers_and_ranges() -> None:
    h = Harness()
    created = await h.call("editor", command="create", path="src/app.py", file_text="a\nb\nc\n")
    assert not created.is_error
    assert "/workspace/src/app.py" in created.content
    assert h.files.files["/workspace/src/app.py"] == b"a\nb\nc\n"
    whole = await h.call("editor", command="view", path="/workspace/src/app.py")
    assert whole.content == "     1\ta\n     2\tb\n     3\tc"
    part = await h.call("editor", command="view", path="src/app.py", view_range=[2, -1])
    assert part.content == "     2\tb\n     3\tc"
    one = await h.call("editor", command="view", path="src/app.py", view_range=[2, 2])
    assert one.content == "     2\tb"
    past = await h.call("editor", command="view", path="src/app.py", view_range=[9, -1])
    assert past.is_error
    assert "has 3 lines" in past.content


async def test_create_overwrites() -> None:
    h = Harness()
    await h.call("editor", command="create", path="a.txt", file_text="old")
    await h.call("editor", command="create", path="a.txt", file_text="new")
    assert h.files.files["/workspace/a.txt"] == b"new"


async def test_str_replace_needs_exactly_one_match() -> None:
    h = Harness()
    await h.call("editor", command="create", path="m.py", file_text="x = 1\ny = 1\nx = 1\n")
    twice = await h.call("editor", command="str_replace", path="m.py", old_str="x = 1")
    assert twice.is_error
    assert "occurs 2 times" in twice.content
    assert "lines 1, 3" in twice.content
    missing = await h.call("editor", command="str_replace", path="m.py", old_str="z = 1")
    assert missing.is_error
    assert "was not found" in missing.content
    assert h.files.files["/workspace/m.py"] == b"x = 1\ny = 1\nx = 1\n"  # unchanged
    done = await h.call(
        "editor", command="str_replace", path="m.py", old_str="y = 1", new_str="y = 2"
    )
    assert not done.is_error
    assert "     2\ty = 2" in done.content
    assert h.files.files["/workspace/m.py"] == b"x = 1\ny = 2\nx = 1\n"
    removed = await h.call("editor", command="str_replace", path="m.py", old_str="y = 2\n")
    assert not removed.is_error
    assert h.files.files["/workspace/m.py"] == b"x = 1\nx = 1\n"


async def test_overlapping_matches_are_ambiguous() -> None:
    h = Harness()
    await h.call("editor", command="create", path="a.txt", file_text="aaa")
    result = await h.call("editor", command="str_replace", path="a.txt", old_str="aa")
    assert result.is_error
    assert "occurs 2 times" in result.content


async def test_insert_after_a_line() -> None:
    h = Harness()
    await h.call("editor", command="create", path="m.py", file_text="one\ntwo\n")
    top = await h.call("editor", command="insert", path="m.py", insert_line=0, new_str="zero")
    assert not top.is_error
    end = await h.call("editor", command="insert", path="m.py", insert_line=3, new_str="three\n")
    assert not end.is_error
    assert h.files.files["/workspace/m.py"] == b"zero\none\ntwo\nthree\n"
    past = await h.call("editor", command="insert", path="m.py", insert_line=9, new_str="x")
    assert past.is_error
    assert "has 4 lines" in past.content


async def test_missing_files_and_binary_files_are_tool_errors() -> None:
    h = Harness()
    missing = await h.call("editor", command="view", path="nope.py")
    assert missing.is_error
    assert "FILE_NOT_FOUND" in missing.content
    assert "nope.py" in missing.content
    h.files.files["/workspace/blob.bin"] = b"\xff\xfe\x00"
    binary = await h.call("editor", command="view", path="blob.bin")
    assert binary.is_error
    assert "not a UTF-8 text file" in binary.content


async def test_a_long_view_is_clipped_with_a_note() -> None:
    h = Harness()
    text = "".join(f"line {n}\n" for n in range(200))
    await h.call("editor", command="create", path="long.txt", file_text=text)
    shown = await h.call("editor", command="view", path="long.txt")
    assert len(shown.content) <= SETTINGS.run_tool_output_chars
    assert "truncated to 400 characters; view a smaller view_range" in shown.content
    assert shown.content.startswith("     1\tline 0")
    assert shown.content.endswith("   200\tline 199")


# --- the other tools without ports -----------------------------------------------------


async def test_finish_carries_the_answer() -> None:
    outcome = await Harness().call("finish", answer="All done.")
    assert outcome == ToolOutcome("finished", final_answer="All done.")


async def test_update_task_without_a_task_is_a_tool_error() -> None:
    outcome = await Harness().call("update_task", status="done")
    assert outcome.is_error
    assert "no task" in outcome.content


def test_output_keeps_head_and_tail() -> None:
    collector = OutputCollector(10)
    for _ in range(100):
        collector.add(b"0123456789")
    text = collector.text()
    assert text.startswith("01234567890123456789")
    assert "bytes omitted" in text
    assert text.endswith("0123456789")
    small = OutputCollector(10)
    small.add("é".encode()[:1])
    small.add("é".encode()[1:])
    assert small.text() == "é"
    assert not small.omitted
    assert clip("x" * 10, 10) == "x" * 10
    clipped = clip("a" * 500 + "b" * 500, 300)
    assert len(clipped) <= 300
    assert clipped.startswith("a")
    assert clipped.endswith("b")


# --- ListRunTools ----------------------------------------------------------------------


class _Rpcs(ToolRpcs):
    def __init__(self) -> None:
        self._tool_registry = REGISTRY


async def _list_tools(caller: Caller | None) -> Any:
    async def call() -> Any:
        bind_call(CallContext(request_id="test", method="ListRunTools", caller=caller))
        return await _Rpcs().ListRunTools(None, None)  # type: ignore[arg-type]

    return await asyncio.create_task(call())


async def test_list_run_tools_describes_the_registry() -> None:
    response = await _list_tools(Caller(user_id=uuid.uuid4()))
    assert [tool.name for tool in response.tools] == list(TOOL_NAMES)
    editor = next(tool for tool in response.tools if tool.name == "editor")
    assert editor.writes
    schema = json.loads(editor.input_schema)
    assert schema["required"] == ["command", "path"]
    assert not next(tool for tool in response.tools if tool.name == "finish").writes
    with pytest.raises(Unauthenticated):
        await _list_tools(None)

"""Hypothesis strategies for any protobuf request, built from its descriptor.

Every field kind gets values a careless or hostile client could send: extreme numbers,
unknown enum numbers, empty / huge / control-character / unicode strings, bounded nesting,
random field masks, out-of-range timestamps and durations. Id fields get, besides noise, a
placeholder for an id the fuzzing user owns or someone else owns (`Ref`), which the world
resolves to a real id just before the call (so a resource deleted and re-created between
examples is still found).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

MAX_DEPTH = 3
HUGE_SIZES = (1025, 64 * 1024 + 1, 300_000, 1_000_000)
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
UINT32 = (0, 2**32 - 1)
UINT64 = (0, 2**64 - 1)

REF_PREFIX = "\x00ref:"
"""Placeholders start with NUL, which no generated string of the other kinds starts with."""

# Which resource an id field names: by field name, or ("id") by the message holding it.
ID_FIELDS = {
    "project_id": "project",
    "task_id": "task",
    "agent_id": "agent",
    "conversation_id": "conversation",
    "run_id": "run",
    "sandbox_id": "sandbox",
    "artifact_id": "artifact",
    "session_id": "session",
    "api_key_id": "api_key",
    "user_id": "user",
    "assignee_user_id": "user",
    "creator_user_id": "user",
    "message_id": "message",
    "tool_call_id": "tool_call",
    "refresh_token": "refresh_token",
    "page_token": "page_token",
    "email": "email",
    "current_password": "password",
}
ID_OF_MESSAGE = {
    "Project": "project",
    "Task": "task",
    "Agent": "agent",
    "Conversation": "conversation",
    "Sandbox": "sandbox",
    "Artifact": "artifact",
    "User": "user",
}
OWNERS = ("own", "foreign")
KINDS = frozenset(ID_FIELDS.values()) | frozenset(ID_OF_MESSAGE.values())

# Values of named string fields that reach deeper than noise would.
PLAUSIBLE: dict[str, tuple[str, ...]] = {
    "model": ("echo", "anthropic/claude-test", "gemini/gemini-test", "anthropic/", "gpt-4"),
    "runtime": ("python", "node", "ruby"),
    "default_runtime": ("python", "node"),
    "language": ("python", "javascript", "typescript", "node", "markdown"),
    "path": ("/workspace", "/workspace/a.txt", "a/b/c.txt", "../../etc/passwd", "/", "."),
    "working_dir": ("/workspace", "/tmp", "relative", "/nonexistent"),  # noqa: S108
    "content_type": ("text/plain", "application/json", "image/png", "text/plain; charset=utf-8"),
    "start_day": ("2026-12-06", "2000-01-01", "9999-12-31", "2026-02-30"),
    "end_day": ("2026-12-06", "1970-01-01", "0001-01-01", "2026-13-01"),
    "format": ("markdown", "json", "text", "MARKDOWN"),
    "size": ("1024x1024", "0x0", "999999x999999", "square"),
    "filename": ("main.py", "a/b.ts", "../x", ".", "README.md"),
    "repository_url": ("https://github.com/a/b", "file:///etc", "git@host:x.git"),
    "sha256": ("0" * 64, "z" * 64),
    "tools": ("bash", "read_file", "write_file", "unknown_tool"),
    "password": ("Corr3ct-Horse", "short", "x" * 200),
    "new_password": ("Corr3ct-Horse-2", "short", "x" * 200),
    "name": ("fuzz", "a" * 300),
    "shell": ("echo hi", "true", "exit 3", "printf x >&2", "cat /etc/hostname"),
}
# Exec runs in a real sandbox: only programs that end on their own (random text would be
# mostly "not found" anyway, but e.g. `yes` or `sleep 1e9` would only test the timeout).
EXEC_PROGRAMS = ("echo", "true", "false", "cat", "ls", "env", "pwd", "printf", "no-such-program")
SPECIAL_STRINGS = (
    " ",
    "null",
    "0",
    "-1",
    "00000000-0000-0000-0000-000000000000",
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
    "' OR 1=1 --",
    "%00",
    "\u202e",
    "🙂" * 10,
    "a\nb",
    "*",
    "..",
)


def ref(owner: str, kind: str, index: int) -> str:
    return f"{REF_PREFIX}{owner}:{kind}:{index}"


def parse_ref(value: str) -> tuple[str, str, int] | None:
    if not value.startswith(REF_PREFIX):
        return None
    owner, kind, index = value[len(REF_PREFIX) :].split(":")
    return owner, kind, int(index)


def huge_strings() -> st.SearchStrategy[str]:
    return st.builds(
        lambda char, size: char * (size // len(char.encode())),
        st.sampled_from(["a", "é", "\x00", "🙂", "\U0010ffff"]),
        st.sampled_from(HUGE_SIZES),
    )


def small_strings() -> st.SearchStrategy[str]:
    return st.one_of(
        st.just(""),
        st.text(max_size=24),
        st.text(st.characters(max_codepoint=0x20), max_size=8),
        st.sampled_from(SPECIAL_STRINGS),
        st.uuids().map(str),
    )


def strings() -> st.SearchStrategy[str]:
    # Mostly small: one string in ~40 is huge (a message has many strings).
    return st.integers(0, 39).flatmap(lambda roll: huge_strings() if roll == 0 else small_strings())


def binaries() -> st.SearchStrategy[bytes]:
    return st.integers(0, 29).flatmap(
        lambda roll: (
            st.sampled_from([b"\x00" * size for size in HUGE_SIZES])
            if roll == 0
            else st.one_of(st.binary(max_size=64), st.just(b"print('hi')\n"))
        )
    )


def integers(bounds: tuple[int, int]) -> st.SearchStrategy[int]:
    low, high = bounds
    edges = (low, high, 0, 1, -1, 2, 10, 100, 1000, 65535, 2**31 - 1, 2**31, 2**32 - 1)
    special = sorted({value for value in edges if low <= value <= high})
    return st.one_of(st.sampled_from(special), st.integers(low, high))


def floats(width: int) -> st.SearchStrategy[float]:
    return st.one_of(
        st.sampled_from(
            [0.0, -0.0, 0.7, 1.0, 2.5, -1.0, float("nan"), float("inf"), -float("inf")]
        ),
        st.floats(width=width),  # type: ignore[arg-type]
    )


def ids(kind: str) -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds(ref, st.just("own"), st.just(kind), st.integers(0, 3)),
        st.builds(ref, st.just("foreign"), st.just(kind), st.integers(0, 3)),
        st.uuids().map(str),
        small_strings(),
    )


def _field_paths(descriptor: Descriptor, prefix: str = "", depth: int = 0) -> list[str]:
    paths: list[str] = []
    for field in descriptor.fields:
        path = f"{prefix}{field.name}"
        paths.append(path)
        if field.message_type is not None and depth < 1 and not field.is_repeated:
            paths.extend(_field_paths(field.message_type, f"{path}.", depth + 1))
    return paths


def field_masks(holder: Descriptor) -> st.SearchStrategy[dict[str, Any]]:
    """Paths of the resource next to the mask (valid ones and nested ones), and junk."""
    valid = [
        path
        for field in holder.fields
        if field.message_type is not None and not _well_known(field.message_type)
        for path in _field_paths(field.message_type)
    ] or ["id"]
    path = st.one_of(
        st.sampled_from(valid),
        st.sampled_from(["*", "", ".", "a..b", "name.", "UPPER", "create_time.seconds", "id"]),
        small_strings(),
    )
    return st.builds(lambda paths: {"paths": paths}, st.lists(path, max_size=5))


def timestamps() -> st.SearchStrategy[dict[str, Any]]:
    seconds = st.one_of(
        st.sampled_from(
            [0, 1, -1, 1796000000, -62135596800, -62135596801, 253402300799, 253402300800, *INT64]
        ),
        st.integers(*INT64),
    )
    nanos = st.one_of(st.sampled_from([0, 999_999_999, 10**9, -1, *INT32]), st.integers(*INT32))
    return st.fixed_dictionaries({}, optional={"seconds": seconds, "nanos": nanos})


def durations() -> st.SearchStrategy[dict[str, Any]]:
    seconds = st.one_of(
        st.sampled_from([0, 1, -1, 2, 5, 30, 3600, 315_576_000_000, 315_576_000_001, *INT64]),
        st.integers(*INT64),
    )
    nanos = st.one_of(st.sampled_from([0, 1, 999_999_999, 10**9, -1, *INT32]), st.integers(*INT32))
    return st.fixed_dictionaries({}, optional={"seconds": seconds, "nanos": nanos})


def _well_known(descriptor: Descriptor) -> bool:
    return descriptor.full_name in (
        "google.protobuf.FieldMask",
        "google.protobuf.Timestamp",
        "google.protobuf.Duration",
    )


def _scalar(field: FieldDescriptor, holder: Descriptor) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return _string_field(field, holder)
    if kind == FieldDescriptor.TYPE_BYTES:
        return binaries()
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        known = [value.number for value in field.enum_type.values]
        return st.one_of(st.sampled_from(known), integers(INT32))
    if kind == FieldDescriptor.TYPE_DOUBLE:
        return floats(64)
    if kind == FieldDescriptor.TYPE_FLOAT:
        return floats(32)
    if kind in (
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_SFIXED64,
    ):
        return integers(INT64)
    if kind in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return integers(UINT64)
    if kind in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return integers(UINT32)
    return integers(INT32)


def _string_field(field: FieldDescriptor, holder: Descriptor) -> st.SearchStrategy[str]:
    name = field.name
    kind = ID_FIELDS.get(name)
    if kind is None and name == "id":
        kind = ID_OF_MESSAGE.get(holder.name)
    if kind is not None:
        return ids(kind)
    if name == "argv":
        return st.one_of(st.sampled_from(EXEC_PROGRAMS), strings())
    plausible = PLAUSIBLE.get(name)
    if plausible:
        return st.one_of(st.sampled_from(plausible), strings())
    return strings()


def _value(field: FieldDescriptor, holder: Descriptor, depth: int) -> st.SearchStrategy[Any]:
    message_type = field.message_type
    if message_type is None:
        return _scalar(field, holder)
    if message_type.full_name == "google.protobuf.FieldMask":
        return field_masks(holder)
    if message_type.full_name == "google.protobuf.Timestamp":
        return timestamps()
    if message_type.full_name == "google.protobuf.Duration":
        return durations()
    return message_values(message_type, depth + 1)


def _field(field: FieldDescriptor, holder: Descriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key, value = (
            field.message_type.fields_by_name["key"],
            field.message_type.fields_by_name["value"],
        )
        return st.dictionaries(
            _value(key, field.message_type, depth),
            _value(value, field.message_type, depth),
            max_size=3,
        )
    if field.is_repeated:
        if field.name == "argv":
            return st.lists(_value(field, holder, depth), min_size=1, max_size=4).map(
                lambda argv: [argv[0] if argv[0] in EXEC_PROGRAMS else "echo", *argv[1:]]
            ) | st.just([])
        return st.lists(_value(field, holder, depth), max_size=3)
    return _value(field, holder, depth)


def message_values(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """A dict of field name -> value (nested dicts for messages); at most one member of a
    oneof is set; nesting stops at MAX_DEPTH."""
    if depth >= MAX_DEPTH:
        return st.just({})
    plain = {
        field.name: _field(field, descriptor, depth)
        for field in descriptor.fields
        if field.containing_oneof is None
    }
    groups = [
        st.one_of(
            st.just({}),
            *(_field(field, descriptor, depth).map(_keyed(field.name)) for field in oneof.fields),
        )
        for oneof in descriptor.oneofs
    ]
    return st.builds(
        _merge,
        st.fixed_dictionaries({}, optional=plain),
        st.tuples(*groups),
    )


def _keyed(name: str) -> Callable[[Any], dict[str, Any]]:
    return lambda value: {name: value}


def _merge(plain: dict[str, Any], groups: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    merged = dict(plain)
    for group in groups:
        merged.update(group)
    return merged


def build(message: Message, values: dict[str, Any], resolve: Callable[[str], str]) -> Message:
    """Fills `message` from `values`, passing every string through `resolve`."""
    descriptor = message.DESCRIPTOR
    for name, value in values.items():
        field = descriptor.fields_by_name[name]
        target = getattr(message, name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            for key, item in value.items():
                key = resolve(key) if isinstance(key, str) else key
                if value_field.message_type is not None:
                    build(target[key], item, resolve)
                else:
                    target[key] = resolve(item) if isinstance(item, str) else item
        elif field.is_repeated:
            for item in value:
                if field.message_type is not None:
                    build(target.add(), item, resolve)
                else:
                    target.append(resolve(item) if isinstance(item, str) else item)
        elif field.message_type is not None:
            target.SetInParent()
            build(target, value, resolve)
        else:
            setattr(message, name, resolve(value) if isinstance(value, str) else value)
    return message


def string_paths(descriptor: Descriptor, depth: int = 0) -> list[list[FieldDescriptor]]:
    """Paths (through singular and repeated message fields) to every string field."""
    paths: list[list[FieldDescriptor]] = []
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_STRING:
            paths.append([field])
        elif field.message_type is not None and depth < MAX_DEPTH:
            for rest in string_paths(field.message_type, depth + 1):
                paths.append([field, *rest])
    return paths


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def length_delimited(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def invalid_utf8_field(path: list[FieldDescriptor], bad: bytes) -> bytes:
    """Wire bytes that, appended to a serialized message, set the string at `path` to `bad`
    (a map entry's key or value, or any message on the way, merges the same way)."""
    payload = length_delimited(path[-1].number, bad)
    for field in reversed(path[:-1]):
        payload = length_delimited(field.number, payload)
    return payload


INVALID_UTF8 = (
    b"\xff",
    b"\xc3\x28",
    b"\xed\xa0\x80",  # an encoded surrogate
    b"ok\xf4\x90\x80\x80",  # above U+10FFFF
    b"\xc0\xaf",  # overlong "/"
    b"\x80" * 100,
)

"""Every RPC the server binds, fed random requests by an authenticated user: no INTERNAL or
UNKNOWN, every error with an ErrorInfo reason, no call without an answer within the
deadline, and the server alive and SERVING at the end. Bytes that are not a valid message
(invalid UTF-8 in a string, a truncated field) are INVALID_ARGUMENT MALFORMED_REQUEST.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from forge.auth.v1 import auth_pb2
from google.protobuf import text_format
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from hypothesis import given, note, settings
from hypothesis import strategies as st

from tests.fuzz.calls import Rpc, bound_rpcs, call, check, request_size
from tests.fuzz.conftest import FuzzedServer
from tests.fuzz.strategies import (
    INVALID_UTF8,
    KINDS,
    build,
    invalid_utf8_field,
    length_delimited,
    message_values,
    string_paths,
)
from tests.fuzz.world import World, register

RPCS = bound_rpcs()

# Constrained RPCs, and why (nothing else is):
THROWAWAY_CALLER = {
    "Logout": "ends the caller's session",
    "RevokeSession": "may revoke the caller's own session",
    "ChangePassword": "changes the caller's password and ends their other sessions",
    "RefreshToken": "rotates the caller's refresh token (a later reuse ends the session)",
}
"""Called by a fresh account per example, so the fuzzing user keeps their credentials."""
ADMIN_RPCS = frozenset({"ListUsers", "UpdateUser", "ListAuditEvents", "GetSystemStats"})
"""Called by the admin in about half the examples (by the fuzzing user in the others); the
admin's UpdateUser of "your own" user changes a spare user, never the fuzzing user."""
# Delete<Kind> of "your own" deletes a spare made for the example (the seeded resources
# stay for the other RPCs); Exec's argv[0] is a program that ends by itself (strategies).


def _spare_kind(rpc: Rpc) -> str | None:
    if rpc.name == "UpdateUser":
        return "user"
    if not rpc.name.startswith("Delete"):
        return None
    kind = "".join(f"_{c.lower()}" if c.isupper() else c for c in rpc.name[6:]).lstrip("_")
    return kind if kind in KINDS else None


def _profile_examples() -> int:
    loaded = settings.default
    assert loaded is not None
    return loaded.max_examples


def _examples(rpc: Rpc) -> int:
    """The profile's count; halved for RPCs that start containers."""
    base = _profile_examples()
    costly = rpc.name in ("CreateSandbox", "RunCode", "DeleteSandbox")
    return max(2, base // 2) if costly else base


def _shown(request: Message | list[Message]) -> str:
    items = request if isinstance(request, list) else [request]
    text = "\n".join(text_format.MessageToString(item, as_one_line=True) for item in items)
    return text if len(text) < 3000 else f"{text[:3000]}… ({len(text)} characters)"


def _requests(rpc: Rpc) -> st.SearchStrategy[Any]:
    values = message_values(rpc.method.input_type)
    return st.lists(values, max_size=5) if rpc.client_streaming else values


def _build(rpc: Rpc, values: Any, world: World) -> Message | list[Message]:
    if rpc.client_streaming:
        return [build(rpc.request_class(), item, world.resolve) for item in values]
    return build(rpc.request_class(), values, world.resolve)


def test_every_bound_service_is_fuzzed(fuzz_channel: grpc.Channel) -> None:
    """The RPC list comes from server/services.py: it is what the server serves."""
    reflection = reflection_pb2_grpc.ServerReflectionStub(fuzz_channel)
    [answer] = list(
        reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=30
        )
    )
    served = {service.name for service in answer.list_services_response.service}
    served -= {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}
    assert served == {str(rpc.service.full_name) for rpc in RPCS}
    assert len(RPCS) > 70


@pytest.mark.parametrize("rpc", RPCS, ids=lambda rpc: rpc.name)
def test_random_requests(rpc: Rpc, world: World, fuzz_channel: grpc.Channel) -> None:
    world.restore()
    spare_kind = _spare_kind(rpc)

    @settings(max_examples=_examples(rpc))
    @given(data=st.data())
    def one_call(data: st.DataObject) -> None:
        caller = register(fuzz_channel, "fuzz-throwaway") if rpc.name in THROWAWAY_CALLER else None
        if rpc.name in ADMIN_RPCS and data.draw(st.booleans(), label="as admin"):
            caller = world.admin
        world.begin(caller, spare_kind)
        request = _build(rpc, data.draw(_requests(rpc), label="request"), world)
        note(f"sent: {_shown(request)}")
        outcome = call(fuzz_channel, rpc, request, world.caller.metadata)
        note(f"answer: {outcome}")
        check(rpc, outcome, request_size(request))

    one_call()


def _corruptions(rpc: Rpc) -> st.SearchStrategy[tuple[bytes, bool]]:
    """(bytes appended to a valid request, whether they must make it undecodable)."""
    truncated = st.builds(
        lambda number, length: length_delimited(number, b"x" * length)[:-1],
        st.sampled_from([1, 2, 15, 1000, 536_870_911]),
        st.integers(1, 300),
    )
    variants = [
        truncated.map(lambda raw: (raw, True)),
        st.binary(min_size=1, max_size=64).map(lambda raw: (raw, False)),
    ]
    paths = string_paths(rpc.method.input_type)
    if paths:
        bad = st.builds(invalid_utf8_field, st.sampled_from(paths), st.sampled_from(INVALID_UTF8))
        variants.append(bad.map(lambda raw: (raw, True)))
    return st.one_of(*variants)


@pytest.mark.parametrize("rpc", RPCS, ids=lambda rpc: rpc.name)
def test_undecodable_requests(rpc: Rpc, world: World, fuzz_channel: grpc.Channel) -> None:
    @settings(max_examples=max(2, _profile_examples() // 2))
    @given(values=message_values(rpc.method.input_type), corruption=_corruptions(rpc))
    def one_call(values: dict[str, Any], corruption: tuple[bytes, bool]) -> None:
        world.begin()
        appended, undecodable = corruption
        raw = build(rpc.request_class(), values, world.resolve).SerializeToString() + appended
        outcome = call(
            fuzz_channel, rpc, [raw] if rpc.client_streaming else raw, world.main.metadata
        )
        note(f"answer: {outcome}")
        check(rpc, outcome, len(raw))
        if undecodable:
            assert (outcome.code, outcome.reason) == (
                grpc.StatusCode.INVALID_ARGUMENT,
                "MALFORMED_REQUEST",
            ), f"{rpc.path}: {outcome}"

    one_call()


def test_server_survived(
    fuzzed_server: FuzzedServer, fuzz_channel: grpc.Channel, world: World
) -> None:
    assert fuzzed_server.proc.poll() is None, f"the server died:\n{fuzzed_server.text()}"
    health = health_pb2_grpc.HealthStub(fuzz_channel)
    answer = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    world.begin()
    me = world.stubs.auth.GetCurrentUser(
        auth_pb2.GetCurrentUserRequest(),
        metadata=world.main.metadata,
        timeout=10,
    )
    assert me.id == world.main.user_id

"""Domain errors and unimplemented RPCs reach gRPC and REST clients with their details."""

from __future__ import annotations

import aiohttp
import grpc
import pytest
from forge.testing.v1 import testing_pb2, testing_pb2_grpc
from google.rpc import error_details_pb2
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from server.core.errors import FieldViolation, InvalidArgument
from server.core.status import MAX_TEXT, to_status_proto
from server.db.engine import make_engine
from server.db.unavailable import is_unstorable_text
from tests.support.rpc import error_info, field_violations

ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo"
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"


def _details_of_type(body: dict[str, object], type_url: str) -> list[dict[str, object]]:
    details = body.get("details", [])
    assert isinstance(details, list)
    return [d for d in details if isinstance(d, dict) and d.get("@type") == type_url]


# An RPC of the contract that the servicer does not build answers UNIMPLEMENTED, with or
# without credentials (TestingService declares one, NotBuilt, for this).
UNBUILT_ROUTE = "/v1/testing:notBuilt"


async def test_unimplemented_rpc_over_grpc(channel: grpc.aio.Channel) -> None:
    stub = testing_pb2_grpc.TestingServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stub.NotBuilt(testing_pb2.EchoRequest(message="r"), timeout=5)
    assert failure.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert error_info(failure.value).reason == "NOT_IMPLEMENTED"


async def test_unimplemented_rpc_through_envoy_is_501_json(http: aiohttp.ClientSession) -> None:
    async with http.get(UNBUILT_ROUTE) as response:
        assert response.status == 501
        assert response.content_type == "application/json"
        body = await response.json()
    assert body["code"] == grpc.StatusCode.UNIMPLEMENTED.value[0]
    [info] = _details_of_type(body, ERROR_INFO_TYPE)
    assert info["reason"] == "NOT_IMPLEMENTED"


@pytest.mark.parametrize(
    ("code", "status", "http_status"),
    [
        (grpc.StatusCode.NOT_FOUND, 5, 404),
        (grpc.StatusCode.ALREADY_EXISTS, 6, 409),
        (grpc.StatusCode.PERMISSION_DENIED, 7, 403),
        (grpc.StatusCode.UNAUTHENTICATED, 16, 401),
        (grpc.StatusCode.FAILED_PRECONDITION, 9, 400),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 8, 429),
    ],
)
async def test_domain_error_reaches_grpc_and_rest_clients(
    channel: grpc.aio.Channel,
    http: aiohttp.ClientSession,
    code: grpc.StatusCode,
    status: int,
    http_status: int,
) -> None:
    stub = testing_pb2_grpc.TestingServiceStub(channel)
    failure_request = testing_pb2.Failure(code=status, reason="THING_WENT_WRONG")
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stub.Echo(testing_pb2.EchoRequest(fail_with=failure_request), timeout=5)
    assert failure.value.code() == code
    info = error_info(failure.value)
    assert info.reason == "THING_WENT_WRONG"
    assert info.domain == "forge.dev"

    body_in = {"failWith": {"code": status, "reason": "THING_WENT_WRONG"}}
    async with http.post("/v1/testing:echo", json=body_in) as response:
        assert response.status == http_status
        assert response.content_type == "application/json"
        body = await response.json()
    assert body["code"] == status
    [info_json] = _details_of_type(body, ERROR_INFO_TYPE)
    assert info_json["reason"] == "THING_WENT_WRONG"


async def test_field_violations_reach_grpc_and_rest_clients(
    channel: grpc.aio.Channel, http: aiohttp.ClientSession
) -> None:
    stub = testing_pb2_grpc.TestingServiceStub(channel)
    failure_request = testing_pb2.Failure(code=3, reason="BAD_THING", field="thing.name")
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stub.Echo(testing_pb2.EchoRequest(fail_with=failure_request), timeout=5)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "thing.name" in field_violations(failure.value)

    body_in = {"failWith": {"code": 3, "reason": "BAD_THING", "field": "thing.name"}}
    async with http.post("/v1/testing:echo", json=body_in) as response:
        assert response.status == 400
        body = await response.json()
    [bad_request] = _details_of_type(body, BAD_REQUEST_TYPE)
    fields = bad_request["fieldViolations"]
    assert isinstance(fields, list)
    assert [v["field"] for v in fields] == ["thing.name"]


async def test_a_bug_answers_internal_without_internals(
    channel: grpc.aio.Channel, http: aiohttp.ClientSession
) -> None:
    stub = testing_pb2_grpc.TestingServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stub.Echo(testing_pb2.EchoRequest(fail_with=testing_pb2.Failure(code=13)), timeout=5)
    assert failure.value.code() == grpc.StatusCode.INTERNAL
    details = failure.value.details() or ""
    assert "deliberate" not in details
    assert "Traceback" not in details
    assert error_info(failure.value).metadata["request_id"] in details

    async with http.post("/v1/testing:echo", json={"failWith": {"code": 13}}) as response:
        assert response.status == 500
        text = await response.text()
    assert "deliberate" not in text


async def test_request_id_is_taken_from_the_caller(channel: grpc.aio.Channel) -> None:
    stub = testing_pb2_grpc.TestingServiceStub(channel)
    call = stub.Echo(
        testing_pb2.EchoRequest(message="hi"), metadata=(("x-request-id", "req-123"),), timeout=5
    )
    response = await call
    assert response.request_id == "req-123"
    trailing = await call.trailing_metadata()
    assert ("x-request-id", "req-123") in list(trailing or ())


async def test_a_failed_call_still_carries_its_request_id(channel: grpc.aio.Channel) -> None:
    stub = testing_pb2_grpc.TestingServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stub.NotBuilt(
            testing_pb2.EchoRequest(message="r"), metadata=(("x-request-id", "req-9"),), timeout=5
        )
    trailers = list(failure.value.trailing_metadata() or ())
    assert ("x-request-id", "req-9") in trailers
    assert error_info(failure.value).reason == "NOT_IMPLEMENTED"  # details survive too


async def test_unary_through_envoy(http: aiohttp.ClientSession) -> None:
    async with http.post("/v1/testing:echo", json={"message": "hello"}) as response:
        assert response.status == 200
        body = await response.json()
    assert body["message"] == "hello"
    assert body["requestId"]


def _gateway_reason(body: dict[str, object]) -> str:
    [info] = _details_of_type(body, ERROR_INFO_TYPE)
    assert info["domain"] == "forge.dev"
    assert info["metadata"] == {"source": "gateway"}
    reason = info["reason"]
    assert isinstance(reason, str)
    return reason


async def test_unknown_route_is_404_json(http: aiohttp.ClientSession) -> None:
    async with http.get("/v1/no/such/route") as response:
        assert response.status == 404
        assert response.content_type == "application/json"
        body = await response.json()
    assert body["code"] == grpc.StatusCode.NOT_FOUND.value[0]
    assert _gateway_reason(body) == "ROUTE_NOT_FOUND"


@pytest.mark.parametrize(
    "body",
    [
        '{"message": ',  # not JSON
        '{"message": 5, "failWith": {"code": "NOT_A_CODE"}}',  # a value of the wrong type
    ],
)
async def test_a_body_the_gateway_cannot_read_is_400_with_a_reason(
    http: aiohttp.ClientSession, body: str
) -> None:
    async with http.post(
        "/v1/testing:echo", data=body, headers={"content-type": "application/json"}
    ) as response:
        assert response.status == 400
        answer = await response.json()
    assert answer["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert answer["message"]
    assert _gateway_reason(answer) == "MALFORMED_REQUEST"


def test_a_status_never_outgrows_the_headers_it_travels_in() -> None:
    echoed = "x" * 100_000  # e.g. a name the caller sent, repeated in the message
    status = to_status_proto(
        InvalidArgument.of([FieldViolation("name", f"{echoed!r} is not known")])
    )
    assert len(status.message) <= MAX_TEXT
    violations = error_details_pb2.BadRequest()
    status.details[1].Unpack(violations)
    assert len(violations.field_violations[0].description) <= MAX_TEXT


async def test_a_nul_the_checks_missed_is_told_apart_from_a_bug(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        async with engine.connect() as connection:
            with pytest.raises(DBAPIError) as refused:
                await connection.execute(text("SELECT CAST(:value AS text)"), {"value": "a\x00b"})
    finally:
        await engine.dispose()
    assert is_unstorable_text(refused.value)
    assert not is_unstorable_text(ValueError("a\x00b"))


async def test_a_body_larger_than_the_server_takes_is_413(http: aiohttp.ClientSession) -> None:
    huge = {"email": "x@example.com", "password": "P4ssword-x", "displayName": "a" * (17 << 20)}
    async with http.post("/v1/auth:register", json=huge) as response:
        assert response.status == 413
        body = await response.json()
    assert body["code"] == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert "larger than max" in body["message"]
    # A refusal of another kind keeps its status.
    async with http.post("/v1/auth:register", json={"email": "nope"}) as invalid:
        assert invalid.status == 400

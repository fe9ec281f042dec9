"""datetime ↔ google.protobuf.Timestamp/Duration, for servicers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf import duration_pb2, timestamp_pb2

from server.core.errors import Violations

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_SECONDS = -62_135_596_800  # 0001-01-01T00:00:00Z, the range google.protobuf.Timestamp allows
_MAX_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z
_LONGEST = timedelta.max.days * 86_400 - 1  # seconds; room for the microseconds


def to_timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    # Timestamp.FromDatetime's result, in integer arithmetic (it is pure Python and several
    # times slower; responses carry two or more timestamps each).
    since = (value if value.tzinfo else value.replace(tzinfo=UTC)) - _EPOCH
    return timestamp_pb2.Timestamp(
        seconds=since.days * 86_400 + since.seconds, nanos=since.microseconds * 1000
    )


def from_timestamp(stamp: timestamp_pb2.Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


def timestamp_argument(stamp: timestamp_pb2.Timestamp, field: str) -> datetime:
    """A request's Timestamp; one outside the range the type allows (or with nanos outside
    0..999,999,999) is INVALID_ARGUMENT on `field`, not a ValueError."""
    valid = _MIN_SECONDS <= stamp.seconds <= _MAX_SECONDS and 0 <= stamp.nanos < 1_000_000_000
    violations = Violations()
    violations.check(valid, field, "must be a valid timestamp between years 1 and 9999")
    violations.raise_if_any()
    return from_timestamp(stamp)


def to_timedelta(message: duration_pb2.Duration) -> timedelta:
    """A request's Duration, saturated at what timedelta holds (about 2.7 million years), so
    an absurd one reaches the caller's range check instead of an OverflowError."""
    seconds = max(-_LONGEST, min(_LONGEST, message.seconds))
    return timedelta(
        seconds=seconds, microseconds=max(-999_999, min(999_999, message.nanos // 1000))
    )


def to_duration(value: timedelta | None) -> duration_pb2.Duration | None:
    if value is None:
        return None
    duration = duration_pb2.Duration()
    duration.FromTimedelta(value)
    return duration


def utcnow() -> datetime:
    return datetime.now(UTC)

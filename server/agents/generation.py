"""Generation parameters of one answer (temperature, top_p, length, stop sequences): checked
here, then passed to whichever provider answers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from server.core.errors import Violations

MAX_TEMPERATURE = 2.0
MAX_STOP_SEQUENCES = 4
MAX_STOP_SEQUENCE_CHARS = 64
FIELD = "parameters"


@dataclass(frozen=True, slots=True)
class GenerationParams:
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int = 0
    """0: the agent's or the server's limit."""
    stop_sequences: tuple[str, ...] = ()


def check_top_p(violations: Violations, field: str, top_p: float | None) -> None:
    if top_p is not None:
        violations.check(
            math.isfinite(top_p) and 0 < top_p <= 1, field, "must be above 0 and at most 1"
        )


def check_stop_sequences(violations: Violations, field: str, stops: Sequence[str]) -> None:
    violations.check(
        len(stops) <= MAX_STOP_SEQUENCES, field, f"must be at most {MAX_STOP_SEQUENCES}"
    )
    violations.check(
        all(0 < len(stop) <= MAX_STOP_SEQUENCE_CHARS and "\x00" not in stop for stop in stops),
        field,
        f"each must be 1 to {MAX_STOP_SEQUENCE_CHARS} characters",
    )


def checked(
    temperature: float | None,
    top_p: float | None,
    max_output_tokens: int,
    stop_sequences: Sequence[str],
    max_output_limit: int,
) -> GenerationParams:
    """The parameters of a request; INVALID_ARGUMENT naming each one out of range."""
    violations = Violations()
    if temperature is not None:
        violations.check(
            math.isfinite(temperature) and 0 <= temperature <= MAX_TEMPERATURE,
            f"{FIELD}.temperature",
            f"must be between 0 and {MAX_TEMPERATURE:g}",
        )
    check_top_p(violations, f"{FIELD}.top_p", top_p)
    violations.check(
        0 <= max_output_tokens <= max_output_limit,
        f"{FIELD}.max_output_tokens",
        f"must be between 0 (the default) and {max_output_limit}",
    )
    check_stop_sequences(violations, f"{FIELD}.stop_sequences", stop_sequences)
    violations.raise_if_any()
    return GenerationParams(temperature, top_p, max_output_tokens, tuple(stop_sequences))

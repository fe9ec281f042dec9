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
    if top_p is not None:
        violations.check(
            math.isfinite(top_p) and 0 < top_p <= 1,
            f"{FIELD}.top_p",
            "must be above 0 and at most 1",
        )
    violations.check(
        0 <= max_output_tokens <= max_output_limit,
        f"{FIELD}.max_output_tokens",
        f"must be between 0 (the default) and {max_output_limit}",
    )
    violations.check(
        len(stop_sequences) <= MAX_STOP_SEQUENCES,
        f"{FIELD}.stop_sequences",
        f"must be at most {MAX_STOP_SEQUENCES}",
    )
    violations.check(
        all(
            0 < len(stop) <= MAX_STOP_SEQUENCE_CHARS and "\x00" not in stop
            for stop in stop_sequences
        ),
        f"{FIELD}.stop_sequences",
        f"each must be 1 to {MAX_STOP_SEQUENCE_CHARS} characters",
    )
    violations.raise_if_any()
    return GenerationParams(temperature, top_p, max_output_tokens, tuple(stop_sequences))

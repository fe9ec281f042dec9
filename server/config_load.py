"""Settings of how a server sheds load (server/core/loop_load.py); Settings inherits them."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings


class LoadSettings(BaseSettings):
    stream_busy_target: float = Field(
        0.75,
        gt=0,
        le=1,
        description="share of a core the event loop may be busy before streams that relay "
        "many small events (chat deltas) start holding them to send fewer, larger ones",
    )
    stream_max_hold_ms: float = Field(
        500.0,
        ge=0,
        le=5000,
        description="longest a stream holds its next event while the loop is over its target "
        "(it also bounds the delay this adds to a delta); 0 never holds",
    )

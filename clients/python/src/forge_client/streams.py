"""Helpers for the streaming RPCs' oneof events."""

from __future__ import annotations

import betterproto2

from forge_client._proto.forge.agents import v1 as agents

RECONNECTS = 5
"""Consecutive failed reconnections after which watch_run gives up."""


def kind(event: betterproto2.Message, group: str = "event") -> str:
    """Which member of a message's oneof `group` is set (`delta`, `exit`, …), or ""."""
    name, _ = betterproto2.which_one_of(event, group)
    return name


def ends_run(event: agents.RunEvent) -> bool:
    """A run's last event: `completed` or `error`."""
    return kind(event) in ("completed", "error")

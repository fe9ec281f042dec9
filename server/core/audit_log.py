"""Writing the audit log (who did what, from where), for every service: an event is added to
the session of the change it describes, so it commits with it. ListAuditEvents (auth) reads
it; `action` is the lower-case name of an AuditAction without its prefix."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.core.context import current_call
from server.db.models import AuditEvent


def record_audit_event(
    session: AsyncSession,
    action: str,
    *,
    actor_id: uuid.UUID | None = None,
    subject_id: uuid.UUID | None = None,
    target: str = "",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    call = current_call()
    caller = call.caller
    if caller is not None and caller.service is not None:
        # A service (mutual TLS) names no user: the identity is the actor, in the details.
        details = {**(details or {}), "service": caller.service}
        details["service_role"] = caller.service_role or ""
        if actor_id == caller.user_id:
            actor_id = None
        if subject_id == caller.user_id:
            subject_id = None
    event = AuditEvent(
        actor_id=actor_id,
        subject_id=subject_id,
        action=action,
        target=target[:320],
        peer_address=call.client_address[:64],
        user_agent=call.user_agent[:512],
        details=details or {},
    )
    session.add(event)
    return event

"""The access rule for one sandbox: its project's (projects/access.py), and a caller who may
not see the project gets SANDBOX_NOT_FOUND, as for a sandbox that does not exist.

The sandbox and the caller's membership come in one query (every exec and file call makes
it); a sandbox row implies its project exists (deleting a project deletes its rows).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from server.core.access import ProjectRole, judge_role
from server.core.context import Caller
from server.core.errors import FieldViolation, InvalidArgument, NotFound
from server.core.ids import parse_id
from server.db.sandbox_models import SandboxRow
from server.sandbox import store
from server.sandbox.failures import sandbox_not_found


async def sandbox_for(
    db: AsyncSession, caller: Caller, sandbox_id: str, needed: ProjectRole
) -> SandboxRow:
    if not sandbox_id:
        raise InvalidArgument.of([FieldViolation("sandbox_id", "is required")])
    sid = parse_id(sandbox_id)
    found = await store.get_with_role(db, sid, caller.user_id) if sid is not None else None
    if found is None:
        raise sandbox_not_found()
    row, role = found
    try:
        judge_role(caller, True, role, needed)
    except NotFound as error:
        raise sandbox_not_found() from error
    return row

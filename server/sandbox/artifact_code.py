"""RunCode of an artifact: the source and language come from a code artifact of the project
(through the artifact port) instead of the request."""

from __future__ import annotations

from dataclasses import replace

from server.core.access import project_not_found
from server.core.context import Caller
from server.core.errors import Violations
from server.core.hooks import Port
from server.core.ids import parse_id
from server.core.ports import ArtifactPort
from server.sandbox.launcher import RunCodeParams


class ArtifactCode:
    def __init__(self, artifacts: Port[ArtifactPort]) -> None:
        self._artifacts = artifacts

    async def params(
        self,
        caller: Caller,
        project_id: str,
        artifact_id: str,
        version: int,
        params: RunCodeParams,
    ) -> RunCodeParams:
        """`params` with the artifact's source (and language, unless one was given)."""
        violations = Violations()
        aid = parse_id(artifact_id)
        violations.check(aid is not None, "artifact_id", "must be an artifact id")
        violations.check(not params.code, "code", "give code or artifact_id, not both")
        violations.check(version >= 0, "artifact_version", "must not be negative")
        violations.raise_if_any()
        assert aid is not None
        pid = parse_id(project_id)
        if pid is None:
            raise project_not_found()
        source = await self._artifacts.get().source_code(caller, pid, aid, version)
        return replace(params, language=params.language or source.language, code=source.code)

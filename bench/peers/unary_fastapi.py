"""The peer of GetProject: FastAPI + uvicorn, `GET /v1/projects/{id}` with a bearer JWT.

What a FastAPI user would write, doing the same work as Forge per call: a `current_caller`
dependency that verifies the JWT with the same PyJWT call (server/auth/tokens.py) and reads the
user/session state with the same query (server/auth/store.py caller_state), then the endpoint
runs the same read as Forge's ProjectService.GetProject (server/projects/projects.py: the
project-role check and the project load in one query), over the same engine settings (pool,
read lane) and the same database. What differs is the framework (FastAPI + uvicorn with uvloop
and httptools, JSON) and that the JWT is verified on every request, as a FastAPI dependency
usually does; Forge keeps verified tokens' claims until they expire.

    python -m bench.peers.unary_fastapi '{"database_url": …, "jwt_secret": …, "port": 0}'
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import uvicorn
from fastapi import Depends, FastAPI, Header, HTTPException

from bench.loadgen.common import args
from server.auth import store
from server.auth.authenticator import VerifiedTokens
from server.auth.tokens import AccessTokens
from server.config import Settings
from server.core.context import AuthMethod, Caller
from server.core.errors import ForgeError, Unauthenticated
from server.core.hooks import ProjectDeletionHooks
from server.db.engine import make_engine, make_session_factory
from server.projects.projects import Projects

params = args()
defaults = Settings()
tokens = AccessTokens(
    params["jwt_secret"].encode(),
    defaults.jwt_issuer,
    defaults.jwt_audience,
    timedelta(seconds=defaults.access_token_ttl_seconds),
)
engine = make_engine(
    params["database_url"],
    pool_size=defaults.database_pool_size,
    max_overflow=defaults.database_max_overflow,
    read_lane=defaults.read_lane_connections,
)
sessions = make_session_factory(engine)
# {"jwt_cache": true}: verify each token once until it expires, as Forge does (comparison only).
verify = VerifiedTokens(tokens).verify if params.get("jwt_cache") else tokens.verify
projects = Projects(sessions, ProjectDeletionHooks())
app = FastAPI()


async def current_caller(authorization: Annotated[str, Header()] = "") -> Caller:
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(401, "authentication required")
    try:
        claims = verify(token)
    except Unauthenticated as error:
        raise HTTPException(401, error.reason) from error
    state = await store.caller_state(sessions, claims.user_id, claims.session_id)
    if state is None or state.disabled or state.session_revoked:
        raise HTTPException(401, "the access token is not valid")
    return Caller(
        user_id=claims.user_id,
        roles=frozenset({state.role}),
        auth_method=AuthMethod.JWT,
        session_id=str(claims.session_id) if claims.session_id else None,
    )


@app.get("/v1/projects/{project_id}")
async def get_project(
    project_id: str, caller: Annotated[Caller, Depends(current_caller)]
) -> dict[str, Any]:
    try:
        view = await projects.get(caller, project_id)
    except ForgeError as error:
        raise HTTPException(404 if error.code.name == "NOT_FOUND" else 403, error.reason) from error
    return {
        "id": str(view.id),
        "name": view.name,
        "description": view.description,
        "repositoryUrl": view.repository_url,
        "defaultRuntime": view.default_runtime,
        "callerRole": view.caller_role.name if view.caller_role else "PROJECT_ROLE_UNSPECIFIED",
        "creatorUserId": str(view.creator_id) if view.creator_id else "",
        "createTime": view.create_time.isoformat(),
        "updateTime": view.update_time.isoformat(),
    }


if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=params.get("port", 0),
        log_level="info",
        access_log=False,
        loop=params.get("loop", "auto"),
        http=params.get("http", "auto"),
    )

"""The peer of GetProject: FastAPI + uvicorn, `GET /v1/projects/{id}` with a bearer JWT.

What a FastAPI user would write, doing the same work as Forge per call: a `current_caller`
dependency that verifies the JWT with the same PyJWT call (server/auth/tokens.py) and reads the
user/session state with the same query (server/auth/store.py caller_state), then the endpoint
runs the same read as Forge's ProjectService.GetProject (server/projects/projects.py: the
project-role check and the project load in one query), over the same engine settings (pool,
read lane) and the same database. What differs is the framework (FastAPI + uvicorn with uvloop
and httptools, JSON) and that the JWT is verified on every request, as a FastAPI dependency
usually does; Forge keeps verified tokens' claims until they expire, and reads the caller's
account state in the same statement as the project (core/caller_state.py), where a FastAPI
dependency reads it on its own. `{"forge_reads": true}` gives the peer both of Forge's ways
(to show what the framework alone costs; not the peer the issue names).

    python -m bench.peers.unary_fastapi '{"database_url": …, "jwt_secret": …, "port": 0}'
"""

from __future__ import annotations

from typing import Annotated, Any

import uvicorn
from fastapi import Depends, FastAPI, Header, HTTPException

from bench.loadgen.common import args
from bench.peers import forge_parts
from server.auth import store
from server.auth.authenticator import VerifiedTokens
from server.auth.tokens import AccessClaims
from server.core.context import AuthMethod, CallContext, Caller, UnconfirmedCaller
from server.core.errors import ForgeError, Unauthenticated
from server.core.hooks import ProjectDeletionHooks
from server.projects.projects import Projects

params = args()
tokens = forge_parts.access_tokens(params["jwt_secret"])
sessions = forge_parts.sessions(params["database_url"])
# {"forge_reads": true}: verify each token once until it expires, and read the account's
# state with the project, as Forge does (comparison only).
forge_reads = bool(params.get("forge_reads"))
verify = VerifiedTokens(tokens).verify if forge_reads else tokens.verify
projects = Projects(sessions, ProjectDeletionHooks())
app = FastAPI()


def bearer_claims(authorization: str) -> AccessClaims:
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(401, "authentication required")
    try:
        return verify(token)
    except Unauthenticated as error:
        raise HTTPException(401, error.reason) from error


async def current_call(authorization: Annotated[str, Header()] = "") -> CallContext:
    claims = bearer_claims(authorization)
    call = CallContext(request_id="", method="GetProject")
    if forge_reads:
        call.unconfirmed = UnconfirmedCaller(claims.user_id, claims.session_id)
        return call
    state = await store.caller_state(sessions, claims.user_id, claims.session_id)
    if state is None or state.disabled or state.session_revoked:
        raise HTTPException(401, "the access token is not valid")
    call.caller = Caller(
        user_id=claims.user_id,
        roles=frozenset({state.role}),
        auth_method=AuthMethod.JWT,
        session_id=str(claims.session_id) if claims.session_id else None,
    )
    return call


@app.get("/v1/projects/{project_id}")
async def get_project(
    project_id: str, call: Annotated[CallContext, Depends(current_call)]
) -> dict[str, Any]:
    try:
        view = await projects.get(call, project_id)
    except ForgeError as error:
        status = {"NOT_FOUND": 404, "UNAUTHENTICATED": 401}.get(error.code.name, 403)
        raise HTTPException(status, error.reason) from error
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

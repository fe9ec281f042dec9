"""The floor of GetProject on grpc.aio: ProjectService.GetProject on a bare grpc.aio server
(no interceptor) doing the least a server can do per call for it — Forge's verified-token
cache, its one statement for the project, the caller's role and account state (on the same
engine settings and read lane), and the same answer message.

Beside the FastAPI peer it shows what the framework alone allows: the FastAPI app given the
same two ways (`unary_fastapi.py` with `forge_reads`) is the same work on uvicorn.

    python -m bench.peers.unary_grpc_project '{"database_url": …, "jwt_secret": …}'
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import grpc
from forge.projects.v1 import projects_pb2

from bench.loadgen.common import args
from bench.peers import forge_parts
from server.auth.authenticator import VerifiedTokens
from server.core.context import CallContext, UnconfirmedCaller
from server.core.errors import ForgeError
from server.core.hooks import ProjectDeletionHooks
from server.projects import convert
from server.projects.projects import Projects

Context = grpc.aio.ServicerContext[Any, Any]


class FloorProjects:
    """GetProject alone (the load generator calls nothing else)."""

    def __init__(self, verified: VerifiedTokens, projects: Projects) -> None:
        self._verified = verified
        self._projects = projects

    async def GetProject(
        self, request: projects_pb2.GetProjectRequest, context: Context
    ) -> projects_pb2.Project:
        authorization = ""
        for key, value in context.invocation_metadata() or ():
            if key == "authorization" and isinstance(value, str):
                authorization = value
        scheme, _, token = authorization.partition(" ")
        try:
            if scheme.lower() != "bearer" or not token:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, "authentication required")
            claims = self._verified.verify(token)
            call = CallContext(request_id="", method="GetProject")
            call.unconfirmed = UnconfirmedCaller(claims.user_id, claims.session_id)
            view = await self._projects.get(call, request.project_id)
        except ForgeError as error:
            await context.abort(grpc.StatusCode[error.code.name], error.reason)
        return convert.project_to_proto(view)


async def serve(params: dict[str, Any]) -> None:
    projects = Projects(forge_parts.sessions(params["database_url"]), ProjectDeletionHooks())
    verified = VerifiedTokens(forge_parts.access_tokens(params["jwt_secret"]))
    servicer = FloorProjects(verified, projects)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "forge.projects.v1.ProjectService",
                {
                    "GetProject": grpc.unary_unary_rpc_method_handler(
                        servicer.GetProject,
                        request_deserializer=projects_pb2.GetProjectRequest.FromString,
                        response_serializer=projects_pb2.Project.SerializeToString,
                    )
                },
            )
        ]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"project floor: serving on port {port}", file=sys.stderr, flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    config = args()
    import uvloop

    uvloop.install()
    asyncio.run(serve(config))

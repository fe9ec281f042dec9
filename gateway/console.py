"""The web console (clients/console/dist) served by Envoy itself as static files.

The launcher adds these routes to the rendered config when it is given a built console:
each file becomes a `direct_response` route whose body Envoy reads from the file when it
loads the config (so a rebuilt console needs an Envoy restart). The checked-in
gateway/envoy.yaml (the production gateway image) carries no console routes.

Two details of the template matter:
- the gRPC-JSON transcoder rejects requests it cannot map to an RPC (404), so it is
  switched off on the console routes;
- a direct response is an Envoy "local reply", which local_reply_config would turn into a
  JSON error body for REST callers: a first mapper leaves console replies untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

PREFIX = "/console/"
DEFAULT_DIST = Path(__file__).resolve().parents[1] / "clients" / "console" / "dist"
TRANSCODER_FILTER = "envoy.filters.http.grpc_json_transcoder"
# Envoy's default cap on a direct response body is 4 KiB.
MAX_BODY_BYTES = 4 * 1024 * 1024
# Same-origin only: the console talks gRPC-Web to the Envoy that served it.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class StaticFile:
    path: str  # URL path
    name: str  # file in the dist directory
    content_type: str


FILES = (
    StaticFile(PREFIX, "index.html", "text/html; charset=utf-8"),
    StaticFile(f"{PREFIX}app.js", "app.js", "text/javascript; charset=utf-8"),
    StaticFile(f"{PREFIX}app.css", "app.css", "text/css; charset=utf-8"),
)


def is_built(dist: Path) -> bool:
    return all((dist / f.name).is_file() for f in FILES)


def _header(key: str, value: str) -> dict[str, Any]:
    return {"header": {"key": key, "value": value}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}


_NO_TRANSCODER = {
    TRANSCODER_FILTER: {
        "@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig",
        "disabled": True,
    }
}


def routes(dist: Path) -> list[dict[str, Any]]:
    """GET routes for the console's files (`/console` redirects to `/console/`)."""
    dist = dist.resolve()
    if not is_built(dist):
        missing = [f.name for f in FILES if not (dist / f.name).is_file()]
        raise FileNotFoundError(f"web console not built in {dist} (missing {', '.join(missing)})")
    get = {"name": ":method", "string_match": {"exact": "GET"}}
    table: list[dict[str, Any]] = [
        {
            "match": {"path": PREFIX.rstrip("/"), "headers": [get]},
            "redirect": {"path_redirect": PREFIX},
            "typed_per_filter_config": _NO_TRANSCODER,
        }
    ]
    for f in FILES:
        table.append(
            {
                "match": {"path": f.path, "headers": [get]},
                "direct_response": {"status": 200, "body": {"filename": str(dist / f.name)}},
                "response_headers_to_add": [
                    _header("content-type", f.content_type),
                    _header("cache-control", "no-cache"),
                    _header("content-security-policy", CONTENT_SECURITY_POLICY),
                ],
                "typed_per_filter_config": _NO_TRANSCODER,
            }
        )
    return table


def reply_mapper() -> dict[str, Any]:
    """A local_reply_config mapper that keeps console replies as they are (no JSON body)."""
    return {
        "filter": {
            "header_filter": {
                "header": {"name": ":path", "string_match": {"prefix": PREFIX.rstrip("/")}}
            }
        }
    }


def add_to(hcm: dict[str, Any], dist: Path) -> None:
    """Adds the console to a rendered http_connection_manager config."""
    route_config: dict[str, Any] = hcm["route_config"]
    table: list[dict[str, Any]] = route_config["virtual_hosts"][0]["routes"]
    catch_all = next(i for i, r in enumerate(table) if r["match"].get("prefix") == "/")
    table[catch_all:catch_all] = routes(dist)
    route_config["max_direct_response_body_size_bytes"] = max(
        int(route_config.get("max_direct_response_body_size_bytes", 0)), MAX_BODY_BYTES
    )
    local_reply = hcm.setdefault("local_reply_config", {})
    local_reply["mappers"] = [reply_mapper(), *local_reply.get("mappers", [])]

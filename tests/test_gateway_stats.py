"""Envoy's own stats for a scraper outside its container (gateway/stats.py): with a stats
port, a real Envoy serves GET /stats/prometheus there (the envoy_* series, counting the calls
it relays), and nothing else of its admin: quitting, resetting counters, dumping the config
or changing log levels through that port is refused and has no effect. Without one the
rendered config has no such listener."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from gateway import stats
from gateway.launcher import EnvoyConfig, EnvoyProcess, render_config
from server.app import ForgeServer
from tests.support.waiting import eventually

DESCRIPTOR = Path(__file__).resolve().parents[1] / "gen" / "forge.binpb"
UPSTREAM_RQ = "envoy_cluster_upstream_rq"  # (a counter: exposed as ..._total)


def _config(upstream_port: int, stats_port: int | None) -> EnvoyConfig:
    return EnvoyConfig(
        listen_port=0,
        admin_port=0,
        upstream_host="127.0.0.1",
        upstream_port=upstream_port,
        descriptor_path=DESCRIPTOR,
        listen_host="127.0.0.1",
        access_log=False,
        stats_port=stats_port,
        stats_host="127.0.0.1",
    )


@pytest.fixture(scope="module")
async def gateway(forge: ForgeServer) -> AsyncIterator[EnvoyProcess]:
    async with EnvoyProcess(_config(forge.port, stats_port=0)) as proc:
        yield proc


async def _raw(port: int, method: str, path: str) -> tuple[int, str]:
    """One HTTP/1.1 request with `path` sent as written (no client-side normalization)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: envoy\r\nContent-Length: 0\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = answer.decode("utf-8", "replace").partition("\r\n\r\n")
    return int(head.split(" ", 2)[1]), body


async def _scrape(gateway: EnvoyProcess) -> dict[tuple[str, str], float]:
    """(sample name, envoy_cluster_name) -> value, from the stats port."""
    async with aiohttp.ClientSession() as http, http.get(gateway.stats_url) as answer:
        assert answer.status == 200, await answer.text()
        assert answer.content_type == "text/plain"
        text = await answer.text()
    return {
        (sample.name, sample.labels.get("envoy_cluster_name", "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def _relayed_calls(gateway: EnvoyProcess, count: int) -> None:
    async with aiohttp.ClientSession(gateway.base_url) as http:
        for _ in range(count):  # unauthenticated: the server itself answers 401
            async with http.get("/v1/projects") as answer:
                assert answer.status == 401


async def test_stats_port_serves_envoys_prometheus_stats(gateway: EnvoyProcess) -> None:
    assert gateway.stats_port
    assert gateway.stats_port not in (gateway.listen_port, gateway.admin_port)
    series = await _scrape(gateway)
    assert series[("envoy_server_live", "")] == 1
    before = series.get((f"{UPSTREAM_RQ}_total", "forge_grpc"), 0.0)
    await _relayed_calls(gateway, 3)

    async def counted() -> bool:
        series = await _scrape(gateway)
        return series.get((f"{UPSTREAM_RQ}_total", "forge_grpc"), 0.0) >= before + 3

    await eventually(counted)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/quitquitquit"),
        ("GET", "/quitquitquit"),
        ("POST", "/stats/reset"),
        ("POST", "/healthcheck/fail"),
        ("POST", "/logging?level=trace"),
        ("GET", "/config_dump"),
        ("GET", "/clusters"),
        ("GET", "/stats"),
        ("GET", "/"),
        ("GET", "/stats/prometheus/../../quitquitquit"),
        ("POST", "/stats/prometheus/../../quitquitquit"),
        ("GET", "/stats/prometheus%2F..%2F..%2Fconfig_dump"),
        ("POST", "/stats/prometheus"),
        ("PUT", "/stats/prometheus"),
    ],
)
async def test_stats_port_serves_nothing_else_of_the_admin(
    gateway: EnvoyProcess, method: str, path: str
) -> None:
    await _relayed_calls(gateway, 1)
    counted = (await _scrape(gateway))[(f"{UPSTREAM_RQ}_total", "forge_grpc")]
    assert counted >= 1

    status, body = await _raw(gateway.stats_port or 0, method, path)
    assert status in (400, 404, 405), (status, body[:200])
    assert "envoy_" not in body
    assert "configs" not in body

    # Nothing happened: Envoy runs and is healthy, its counters were not reset, and it
    # still relays calls.
    assert gateway.running
    assert await gateway.admin_get("/ready") == (200, "LIVE\n")
    async with aiohttp.ClientSession() as http, http.get(gateway.base_url + "/healthz") as r:
        assert r.status == 200
    assert (await _scrape(gateway))[(f"{UPSTREAM_RQ}_total", "forge_grpc")] >= counted
    _, levels = await gateway.admin_get("/logging")
    assert ": trace" not in levels


async def test_the_stats_listener_is_off_unless_asked() -> None:
    rendered = yaml.safe_load(render_config(_config(50051, stats_port=None)))
    names = [listener["name"] for listener in rendered["static_resources"]["listeners"]]
    assert stats.LISTENER_NAME not in names
    clusters = [cluster["name"] for cluster in rendered["static_resources"]["clusters"]]
    assert stats.CLUSTER_NAME not in clusters


def test_the_stats_listener_needs_the_admin_port_in_advance() -> None:
    with pytest.raises(ValueError, match="admin port"):
        render_config(_config(50051, stats_port=9902))  # admin_port=0: unknown until started

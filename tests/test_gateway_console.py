"""Envoy serves a built web console at /console/ when the launcher is given one
(gateway/console.py), byte for byte and with the right content types, without changing
what REST callers get; without one there are no console routes (the production config).
These tests use a stand-in dist directory; tests/clients/test_console_browser.py runs the
real console in a browser."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from gateway import console
from gateway.launcher import DEFAULT_TEMPLATE, EnvoyConfig, EnvoyProcess, main, render_config
from server.app import ForgeServer

REPO_ROOT = Path(__file__).resolve().parents[1]
DESCRIPTOR = REPO_ROOT / "gen" / "forge.binpb"

# Bigger than Envoy's default 4 KiB direct-response cap, and holding what Envoy's formatters
# would otherwise expand.
SCRIPT = "".join(
    f'console.log("line {i} %LOCAL_REPLY_BODY% %RESPONSE_CODE%");\n' for i in range(2000)
)


def _config(upstream_port: int, console_dir: Path | None) -> EnvoyConfig:
    return EnvoyConfig(
        listen_port=0,
        admin_port=0,
        upstream_host="127.0.0.1",
        upstream_port=upstream_port,
        descriptor_path=DESCRIPTOR,
        listen_host="127.0.0.1",
        access_log=False,
        console_dir=console_dir,
    )


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("console-dist")
    (root / "index.html").write_text('<!doctype html><script src="app.js"></script>')
    (root / "app.js").write_text(SCRIPT)
    (root / "app.css").write_text("body { color: #123456; }\n")
    return root


@pytest.fixture(scope="module")
async def gateway(forge: ForgeServer, dist: Path) -> AsyncIterator[EnvoyProcess]:
    async with EnvoyProcess(_config(forge.port, dist)) as proc:
        yield proc


@pytest.mark.parametrize(
    ("path", "name", "content_type"),
    [
        ("/console/", "index.html", "text/html"),
        ("/console/app.js", "app.js", "text/javascript"),
        ("/console/app.css", "app.css", "text/css"),
    ],
)
async def test_console_files_are_served_as_built(
    gateway: EnvoyProcess, dist: Path, path: str, name: str, content_type: str
) -> None:
    async with aiohttp.ClientSession() as http, http.get(gateway.base_url + path) as r:
        body = await r.read()
        assert r.status == 200
        assert r.content_type == content_type
        assert r.charset == "utf-8"
        assert body == (dist / name).read_bytes()
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["x-request-id"]


async def test_console_without_slash_redirects(gateway: EnvoyProcess) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{gateway.base_url}/console", allow_redirects=False) as r,
    ):
        assert r.status == 301
        assert r.headers["location"].endswith("/console/")


async def test_rest_errors_keep_their_json_shape_next_to_the_console(
    gateway: EnvoyProcess,
) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{gateway.base_url}/v1/nope") as r:
        assert r.status == 404
        body = await r.json()
        assert body["code"] == 5


async def test_without_a_console_there_are_no_console_routes(forge: ForgeServer) -> None:
    assert "/console" not in render_config(_config(forge.port, None))
    # the checked-in template (the production gateway image's config) has none either
    assert "direct_response" not in DEFAULT_TEMPLATE.read_text()
    async with (
        EnvoyProcess(_config(forge.port, None)) as proc,
        aiohttp.ClientSession() as http,
        http.get(f"{proc.base_url}/console/") as r,
    ):
        assert r.status == 404
        assert r.content_type == "application/json"


def test_an_unbuilt_console_is_refused(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<!doctype html>")
    with pytest.raises(FileNotFoundError, match=r"app\.js"):
        render_config(_config(1, tmp_path))


def test_the_cli_serves_the_console_only_when_it_is_built(
    capsys: pytest.CaptureFixture[str], dist: Path, tmp_path: Path
) -> None:
    args = ["--print-config", "--descriptor", str(DESCRIPTOR)]
    assert main([*args, "--console", str(dist)]) == 0
    assert str(dist / "app.js") in capsys.readouterr().out
    assert main([*args, "--console", str(dist), "--no-console"]) == 0
    assert "/console" not in capsys.readouterr().out
    # an explicit --console that is not built is an error, not a silently missing console
    with pytest.raises(FileNotFoundError):
        main([*args, "--console", str(tmp_path)])
    assert console.DEFAULT_DIST == REPO_ROOT / "clients" / "console" / "dist"

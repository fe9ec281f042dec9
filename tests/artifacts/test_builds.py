"""BuildArtifact and previews, end to end: a React/TypeScript tree artifact bundled with
esbuild in a real node sandbox, its build stored and served again from the store, errors as
diagnostics, and the preview page served through Envoy to a headless browser that shows it
in an iframe of another origin."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import grpc
import pytest
from aiohttp import web
from forge.artifacts.v1 import artifacts_pb2
from forge.sandbox.v1 import sandbox_pb2, sandbox_pb2_grpc
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from gateway.launcher import EnvoyProcess
from tests.artifacts.service_support import DEADLINE, Team, create_tree, new_team, stub
from tests.clients.test_console_browser import CHROMEDRIVER, CHROMIUM, Browser, _needed
from tests.support.rpc import error_info

APP_TSX = b"""import { useState } from "react";

export default function App() {
  const [answer] = useState<number>(41);
  return <h1 id="greeting">Hello from Forge, {answer + 1}</h1>;
}
"""
INDEX_TSX = b"""import { createRoot } from "react-dom/client";
import App from "./App";
import "./style.css";

createRoot(document.getElementById("root")!).render(<App />);
"""
STYLE_CSS = b"h1 { color: rebeccapurple; }\n"
BROKEN_TSX = b"""export default function App() {
  const answer: number = ;
  return <h1>{answer}</h1>;
}
"""
REACT_APP = {"App.tsx": APP_TSX, "index.tsx": INDEX_TSX, "style.css": STYLE_CSS}
Status = artifacts_pb2.BuildStatus


@pytest.fixture
async def team(channel: grpc.aio.Channel) -> Team:
    return await new_team(channel)


async def tree(channel: grpc.aio.Channel, team: Team, files: dict[str, bytes]) -> str:
    created = await create_tree(channel, team, files, title="Greeting", filename="greeting")
    return str(created.id)


async def build(
    channel: grpc.aio.Channel, team: Team, artifact_id: str, *, rebuild: bool = False
) -> list[artifacts_pb2.BuildEvent]:
    call = stub(channel).BuildArtifact(
        artifacts_pb2.BuildArtifactRequest(artifact_id=artifact_id, rebuild=rebuild),
        metadata=team.editor.metadata,
        timeout=DEADLINE,
    )
    return [event async for event in call]


async def test_a_react_tree_builds_in_the_sandbox_and_a_second_build_is_served_stored(
    channel: grpc.aio.Channel, team: Team
) -> None:
    artifact_id = await tree(channel, team, REACT_APP)
    events = await build(channel, team, artifact_id)

    kinds = [event.WhichOneof("event") for event in events]
    assert kinds[0] == "started"
    assert kinds[-1] == "completed"
    assert "log" in kinds
    assert not events[0].started.cached
    done = events[-1].completed
    assert done.status == Status.BUILD_STATUS_SUCCEEDED
    assert (done.artifact_version, done.entry_point) == (1, "index.tsx")
    assert {output.path for output in done.outputs} >= {"bundle.js", "bundle.css"}

    again = await build(channel, team, artifact_id)
    assert [event.WhichOneof("event") for event in again] == ["started", "completed"]
    assert again[0].started.cached
    assert again[-1].completed.id == done.id

    fetched = await stub(channel).GetBuild(
        artifacts_pb2.GetBuildRequest(build_id=done.id),
        metadata=team.viewer.metadata,
        timeout=DEADLINE,
    )
    assert fetched == done
    listed = await stub(channel).ListBuilds(
        artifacts_pb2.ListBuildsRequest(artifact_id=artifact_id),
        metadata=team.viewer.metadata,
        timeout=DEADLINE,
    )
    assert [b.id for b in listed.builds] == [done.id]

    rebuilt = await build(channel, team, artifact_id, rebuild=True)
    assert not rebuilt[0].started.cached
    assert rebuilt[-1].completed.id != done.id


async def test_a_typescript_syntax_error_fails_the_build_with_its_place(
    channel: grpc.aio.Channel, team: Team
) -> None:
    artifact_id = await tree(channel, team, {"App.tsx": BROKEN_TSX})
    events = await build(channel, team, artifact_id)

    done = events[-1].completed
    assert done.status == Status.BUILD_STATUS_FAILED
    assert not done.outputs
    errors = [d for d in done.diagnostics if d.severity == artifacts_pb2.DIAGNOSTIC_SEVERITY_ERROR]
    assert errors
    assert (errors[0].file, errors[0].line) == ("App.tsx", 2)
    assert errors[0].column > 0
    assert errors[0].message
    streamed = [event.diagnostic for event in events if event.HasField("diagnostic")]
    assert errors[0] in streamed

    with pytest.raises(grpc.aio.AioRpcError) as not_built:
        await stub(channel).GetPreviewUrl(
            artifacts_pb2.GetPreviewUrlRequest(artifact_id=artifact_id),
            metadata=team.viewer.metadata,
            timeout=DEADLINE,
        )
    assert error_info(not_built.value).reason == "NOT_BUILT"


async def test_only_editors_build_and_only_code_that_bundles_is_built(
    channel: grpc.aio.Channel, team: Team
) -> None:
    artifact_id = await tree(channel, team, REACT_APP)
    call = stub(channel).BuildArtifact(
        artifacts_pb2.BuildArtifactRequest(artifact_id=artifact_id),
        metadata=team.viewer.metadata,
        timeout=DEADLINE,
    )
    with pytest.raises(grpc.aio.AioRpcError) as viewer:
        await call.read()
    assert viewer.value.code() == grpc.StatusCode.PERMISSION_DENIED

    script = await stub(channel).CreateArtifact(
        artifacts_pb2.CreateArtifactRequest(
            project_id=team.project_id,
            artifact=artifacts_pb2.Artifact(title="script", filename="main.py"),
            content=b"print('hi')\n",
        ),
        metadata=team.editor.metadata,
        timeout=DEADLINE,
    )
    with pytest.raises(grpc.aio.AioRpcError) as python:
        await build(channel, team, script.id)
    assert python.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(python.value).reason == "NOT_BUILDABLE"
    with pytest.raises(grpc.aio.AioRpcError) as no_preview:
        await stub(channel).GetPreviewUrl(
            artifacts_pb2.GetPreviewUrlRequest(artifact_id=script.id),
            metadata=team.viewer.metadata,
            timeout=DEADLINE,
        )
    assert error_info(no_preview.value).reason == "NOT_PREVIEWABLE"


async def preview_url(channel: grpc.aio.Channel, team: Team, artifact_id: str) -> str:
    link = await stub(channel).GetPreviewUrl(
        artifacts_pb2.GetPreviewUrlRequest(artifact_id=artifact_id),
        metadata=team.viewer.metadata,
        timeout=DEADLINE,
    )
    assert link.url.startswith("/v1/previews/")  # the test server knows no public URL
    return link.url


async def test_the_preview_is_served_through_the_gateway_with_no_credentials_and_safe_headers(
    channel: grpc.aio.Channel, team: Team, http: aiohttp.ClientSession
) -> None:
    artifact_id = await tree(channel, team, REACT_APP)
    await build(channel, team, artifact_id)
    url = await preview_url(channel, team, artifact_id)

    async with http.get(url) as page:
        assert page.status == 200, await page.text()
        html = await page.text()
        headers = page.headers
    assert headers["content-type"].startswith("text/html")
    assert headers["content-security-policy"] == "sandbox allow-scripts"
    assert headers["x-content-type-options"] == "nosniff"
    assert "set-cookie" not in headers
    assert '<script src="bundle.js"></script>' in html
    assert '<div id="root"></div>' in html
    async with http.get(f"{url}bundle.js") as script:
        assert script.status == 200
        assert script.headers["content-type"].startswith("text/javascript")
        assert b"Hello from Forge" in await script.read()

    altered = url.replace("/v1/previews/", "/v1/previews/x")
    async with http.get(f"{altered}index.html") as refused:
        assert refused.status == 403
        assert "PREVIEW_LINK_INVALID" in await refused.text()


async def test_an_html_artifact_previews_as_itself(
    channel: grpc.aio.Channel, team: Team, http: aiohttp.ClientSession
) -> None:
    page = b"<!doctype html><title>Plain</title><p id='p'>plain page</p>"
    created = await stub(channel).CreateArtifact(
        artifacts_pb2.CreateArtifactRequest(
            project_id=team.project_id,
            artifact=artifacts_pb2.Artifact(title="Plain", filename="index.html"),
            content=page,
        ),
        metadata=team.editor.metadata,
        timeout=DEADLINE,
    )
    url = await preview_url(channel, team, created.id)
    async with http.get(url) as response:
        assert response.status == 200
        assert await response.read() == page
        assert response.headers["content-security-policy"] == "sandbox allow-scripts"


@pytest.fixture
async def embedding_page(envoy: EnvoyProcess) -> AsyncIterator[web.AppRunner]:
    """A page of another origin that shows `?src=` in an iframe."""

    async def page(request: web.Request) -> web.Response:
        src = envoy.base_url + request.query["src"]
        body = f'<!doctype html><iframe id="preview" src="{src}" width="600"></iframe>'
        return web.Response(text=body, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield runner
    finally:
        await runner.cleanup()


async def test_a_browser_shows_the_built_app_in_an_iframe_of_another_origin(
    channel: grpc.aio.Channel, team: Team, embedding_page: web.AppRunner
) -> None:
    _needed(CHROMIUM, "chromium is not installed (apt-get install chromium)")
    _needed(CHROMEDRIVER, "chromedriver is not installed (apt-get install chromium-driver)")
    artifact_id = await tree(channel, team, REACT_APP)
    await build(channel, team, artifact_id)
    url = await preview_url(channel, team, artifact_id)
    host, port = embedding_page.addresses[0][:2]

    browser = await Browser.start()
    try:
        await browser.open(f"http://{host}:{port}/?src={url}")
        frame = await browser.element("#preview")
        await asyncio.to_thread(browser.driver.switch_to.frame, frame)

        def greeting(driver: WebDriver) -> str | None:
            found = driver.find_elements(By.ID, "greeting")
            return found[0].text if found else None

        text = await browser.until(greeting, "the component's text")
        origin = await browser.script("return window.origin")
    finally:
        await browser.quit()
    assert text == "Hello from Forge, 42"
    assert origin == "null"  # sandboxed: an opaque origin, not the gateway's


async def test_a_python_artifact_previews_as_its_output_with_run_code(
    channel: grpc.aio.Channel, team: Team
) -> None:
    script = await stub(channel).CreateArtifact(
        artifacts_pb2.CreateArtifactRequest(
            project_id=team.project_id,
            artifact=artifacts_pb2.Artifact(title="answer", filename="answer.py"),
            content=b"print('the answer is', 6 * 7)\n",
        ),
        metadata=team.editor.metadata,
        timeout=DEADLINE,
    )
    sandbox = sandbox_pb2_grpc.SandboxServiceStub(channel)
    call = sandbox.RunCode(
        sandbox_pb2.RunCodeRequest(project_id=team.project_id, artifact_id=script.id),
        metadata=team.editor.metadata,
        timeout=DEADLINE,
    )
    events = [event async for event in call]
    assert b"".join(event.stdout for event in events) == b"the answer is 42\n"
    assert events[-1].exit.exit_code == 0

    for request, code, reason in (
        (
            sandbox_pb2.RunCodeRequest(
                project_id=team.project_id, artifact_id=script.id, code="print(1)"
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_ARGUMENT",
        ),
        (
            sandbox_pb2.RunCodeRequest(
                project_id=team.project_id, artifact_id=await tree(channel, team, REACT_APP)
            ),
            grpc.StatusCode.FAILED_PRECONDITION,
            "NOT_RUNNABLE",
        ),
    ):
        refused = sandbox.RunCode(request, metadata=team.editor.metadata, timeout=DEADLINE)
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await refused.read()
        assert error.value.code() == code
        assert error_info(error.value).reason == reason

    other = await new_team(channel)
    foreign = sandbox.RunCode(
        sandbox_pb2.RunCodeRequest(project_id=other.project_id, artifact_id=script.id),
        metadata=other.editor.metadata,
        timeout=DEADLINE,
    )
    with pytest.raises(grpc.aio.AioRpcError) as not_found:
        await foreign.read()
    assert not_found.value.code() == grpc.StatusCode.NOT_FOUND

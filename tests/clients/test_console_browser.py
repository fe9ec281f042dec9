"""The web console (clients/console) in a real headless browser: Debian's chromium driven by
Selenium through /usr/bin/chromedriver, against the real server behind a real Envoy that
serves the console's files itself (gateway/console.py).

The test builds @forge/client (npm run build in clients/ts) and the console (esbuild) first,
so it never runs a stale bundle. Without chromium/chromedriver or npm's packages it skips,
and fails in CI (.ci/run installs them).

Selenium's API blocks: every browser call runs in a thread (asyncio.to_thread), since the
server under test runs in this event loop. Waits are explicit (WebDriverWait), never sleeps.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import grpc
import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait

from gateway import console
from gateway.launcher import EnvoyConfig, EnvoyProcess
from server.app import ForgeServer
from tests.support.accounts import PASSWORD, Account, register

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
BUILD_TIMEOUT = 180.0
WAIT = 30.0  # seconds: an explicit wait's deadline (what it waits for comes much sooner)

T = TypeVar("T")


def _needed(path: Path | None, why: str) -> None:
    if path is not None and path.exists():
        return
    if os.environ.get("CI") == "true":
        raise AssertionError(f"{why}: CI must run the web console's browser test")
    pytest.skip(why)


async def _run(command: list[str], cwd: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        *command,
        cwd=cwd,
        env={**os.environ, "PYTHON": sys.executable, "NO_COLOR": "1"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), BUILD_TIMEOUT)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed:\n{out.decode(errors='replace')}")


@pytest.fixture(scope="module")
async def console_dist() -> Path:
    _needed(CHROMIUM, "chromium is not installed (apt-get install chromium)")
    _needed(CHROMEDRIVER, "chromedriver is not installed (apt-get install chromium-driver)")
    npm = shutil.which("npm")
    _needed(Path(npm) if npm else None, "npm is not installed")
    _needed(REPO_ROOT / "node_modules" / ".bin" / "esbuild", "npm ci has not been run")
    await _run([str(npm), "run", "build"], REPO_ROOT / "clients" / "ts")
    await _run(["node", "build.mjs"], REPO_ROOT / "clients" / "console")
    assert console.is_built(console.DEFAULT_DIST)
    return console.DEFAULT_DIST


@pytest.fixture(scope="module")
async def gateway(forge: ForgeServer, console_dist: Path) -> AsyncIterator[EnvoyProcess]:
    config = EnvoyConfig(
        listen_port=0,
        admin_port=0,
        upstream_host="127.0.0.1",
        upstream_port=forge.port,
        descriptor_path=REPO_ROOT / "gen" / "forge.binpb",
        listen_host="127.0.0.1",
        access_log=False,
        console_dir=console_dist,
    )
    async with EnvoyProcess(config) as proc:
        yield proc


class Browser:
    """A headless chromium page; every call runs in a thread."""

    def __init__(self, driver: WebDriver) -> None:
        self.driver = driver

    @classmethod
    async def start(cls) -> Browser:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for arg in (
            "--headless=new",
            "--no-sandbox",  # CI runs as root
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--window-size=1280,900",
        ):
            options.add_argument(arg)
        # An explicit driver path: Selenium Manager never runs (it would try to download).
        service = Service(executable_path=str(CHROMEDRIVER))
        driver = await asyncio.to_thread(webdriver.Chrome, options=options, service=service)
        return cls(driver)

    async def quit(self) -> None:
        await asyncio.to_thread(self.driver.quit)

    async def open(self, url: str) -> None:
        await asyncio.to_thread(self.driver.get, url)

    async def until(self, condition: Callable[[WebDriver], T | None], what: str) -> T:
        """Waits (explicitly, with a deadline) until `condition` returns something truthy."""
        # Views re-render: an element found a moment ago may be gone (stale) on the next look.
        wait: WebDriverWait[WebDriver] = WebDriverWait(
            self.driver,
            WAIT,
            poll_frequency=0.05,
            ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
        )

        def met(driver: WebDriver) -> T | Literal[False]:
            return condition(driver) or False

        try:
            return await asyncio.to_thread(wait.until, met)
        except Exception as exc:
            notice = await asyncio.to_thread(self._text, "#notice, .error")
            raise AssertionError(
                f"browser: no {what} within {WAIT}s (page says {notice!r})"
            ) from exc

    def _text(self, css: str) -> str:
        return " | ".join(e.text for e in self.driver.find_elements(By.CSS_SELECTOR, css) if e.text)

    async def element(self, css: str) -> WebElement:
        def visible(driver: WebDriver) -> WebElement | None:
            for el in driver.find_elements(By.CSS_SELECTOR, css):
                if el.is_displayed() and el.is_enabled():
                    return el
            return None

        return await self.until(visible, css)

    async def click(self, css: str) -> None:
        el = await self.element(css)
        await asyncio.to_thread(el.click)

    async def type(self, css: str, text: str) -> None:
        el = await self.element(css)
        await asyncio.to_thread(el.clear)
        await asyncio.to_thread(el.send_keys, text)

    async def script(self, source: str, *args: Any) -> Any:
        return await asyncio.to_thread(self.driver.execute_script, source, *args)


@pytest.fixture
async def browser(gateway: EnvoyProcess) -> AsyncIterator[Browser]:
    page = await Browser.start()
    try:
        yield page
    finally:
        await page.quit()


async def _sign_in(browser: Browser, gateway: EnvoyProcess, account: Account) -> None:
    await browser.open(f"{gateway.base_url}/console/")
    await browser.type("#signin input[name=email]", account.email)
    await browser.type("#signin input[name=password]", PASSWORD)
    await browser.click("#signin-submit")
    await browser.until(
        lambda d: d.find_element(By.ID, "who").text == account.email, "signed-in header"
    )


_NEWEST_ANSWER = """
const found = document.querySelectorAll("#messages .msg.assistant");
if (found.length === 0) return null;
const answer = found[found.length - 1];
return [answer.dataset.status || "", answer.querySelector(".text").textContent || ""];
"""


def _answer_state(driver: WebDriver) -> tuple[str, str] | None:
    """(status, text) of the newest assistant message, once it has text: read in one script,
    so that the page cannot move on between reading the one and the other."""
    state = driver.execute_script(_NEWEST_ANSWER)
    if not state or not state[1]:
        return None
    return str(state[0]), str(state[1])


def _completed_answer(driver: WebDriver) -> str | None:
    state = _answer_state(driver)
    return state[1] if state is not None and state[0] == "complete" else None


async def test_sign_in_create_a_project_and_see_a_chat_answer_stream_in(
    browser: Browser, gateway: EnvoyProcess, channel: grpc.aio.Channel
) -> None:
    account = await register(channel, display_name="Console User")
    await _sign_in(browser, gateway, account)

    # A new project opens on its (empty) kanban board; a task lands in "To do".
    await browser.type("#new-project input[name=name]", "Console project")
    await browser.click("#new-project button[type=submit]")
    await browser.until(
        lambda d: d.find_element(By.CSS_SELECTOR, "main h1").text == "Console project",
        "project page",
    )
    await browser.type("#new-task input[name=title]", "Wire the console")
    await browser.click("#new-task button[type=submit]")
    await browser.until(
        lambda d: (
            "Wire the console"
            in d.find_element(By.CSS_SELECTOR, '.column[data-status="TODO"]').text
        ),
        "task in the To do column",
    )

    # Chat: a long message makes the echo model's answer stream for seconds (one token per
    # echo_token_delay_ms), so its tokens are seen arriving before it completes.
    await browser.click("#tab-chat")
    await browser.click("#new-conversation")
    await browser.element("#composer textarea")
    words = " ".join(f"word{i}" for i in range(150))
    await browser.type("#composer textarea", f"Please repeat after me: {words} zebra-marker")
    await browser.click("#composer button[type=submit]")

    status, partial = await browser.until(_answer_state, "streamed tokens")
    assert status == "streaming", f"the answer arrived whole, not streamed: {partial!r}"
    final = await browser.until(_completed_answer, "completed answer")
    assert final.startswith(partial.rstrip("▍"))
    assert len(final) > len(partial)
    assert "zebra-marker" in final

    # The conversation is stored: reloading the page shows both messages again.
    await browser.script("location.reload()")
    reloaded = await browser.until(_answer_state, "stored answer after reload")
    assert reloaded == ("complete", final)

"""Bundling React/TypeScript with esbuild in a node sandbox: what a user gets back, the
bundle or the diagnostics that say what is wrong and where."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta

from server.builds.events import BuildLog, BuildStatus, Diagnostic, Severity
from tests.builds.conftest import SLOW_FILES, BuildWorld, result_of
from tests.sandbox.support import Team

APP = b"""import { useState } from "react";

export function App(): JSX.Element {
  const [count] = useState<number>(3);
  return <h1 className="title">Hello from the Forge app, {count} times</h1>;
}
"""
INDEX = b"""import { createRoot } from "react-dom/client";
import { App } from "./App";
import "./style.css";

createRoot(document.getElementById("root")!).render(<App />);
"""
STYLE = b".title { border-top: 7px solid black; }\n"

# A bare import of React left in the bundle would need a module loader the page lacks.
BARE_REACT = re.compile(rb"""(from\s*["']react(-dom)?["'])|(require\(\s*["']react)""")


async def test_a_two_file_react_app_bundles_with_react_inlined(
    world: BuildWorld, team: Team
) -> None:
    files = {"App.tsx": APP, "index.tsx": INDEX, "style.css": STYLE}
    events = await world.build(team.editor, team.project_id, files)
    result = result_of(events)
    assert result.status is BuildStatus.SUCCEEDED, result.diagnostics
    assert (result.entry, result.synthesized_entry) == ("index.tsx", False)
    assert result.errors == ()

    script = result.output("bundle.js")
    assert script is not None
    assert script.content_type == "text/javascript; charset=utf-8"
    assert b"Hello from the Forge app, " in script.content
    assert not BARE_REACT.search(script.content)
    assert b"react.transitional.element" in script.content
    style = result.output("bundle.css")
    assert style is not None
    assert style.content_type == "text/css; charset=utf-8"
    assert b".title{border-top:7px solid" in style.content
    assert {output.path for output in result.outputs} == {"bundle.js", "bundle.css"}

    logs = [event.message for event in events if isinstance(event, BuildLog)]
    assert any("bundling index.tsx" in message for message in logs)
    assert any("wrote bundle.js" in message for message in logs)


async def test_a_single_component_file_is_rendered_into_root(world: BuildWorld, team: Team) -> None:
    component = b"""export default function Greeting() {
  return <p>Greetings from a lone component</p>;
}
"""
    result = result_of(await world.build(team.editor, team.project_id, {"Greeting.tsx": component}))
    assert result.status is BuildStatus.SUCCEEDED, result.diagnostics
    assert (result.entry, result.synthesized_entry) == ("Greeting.tsx", True)
    script = result.output("bundle.js")
    assert script is not None
    assert b"Greetings from a lone component" in script.content
    assert b'getElementById("root")' in script.content
    assert not BARE_REACT.search(script.content)


async def test_an_entry_under_src_or_named_explicitly_is_used(
    world: BuildWorld, team: Team
) -> None:
    files = {
        "src/main.jsx": b'document.body.textContent = "from src/main";\n',
        "other.js": b'document.body.textContent = "from other";\n',
    }
    found = result_of(await world.build(team.editor, team.project_id, files))
    assert (found.status, found.entry) == (BuildStatus.SUCCEEDED, "src/main.jsx")
    named = result_of(await world.build(team.editor, team.project_id, files, entry="other.js"))
    assert (named.status, named.entry) == (BuildStatus.SUCCEEDED, "other.js")
    script = named.output("bundle.js")
    assert script is not None
    assert b"from other" in script.content
    assert b"from src/main" not in script.content


async def test_a_typescript_syntax_error_fails_with_where_it_is(
    world: BuildWorld, team: Team
) -> None:
    broken = b"""export default function App() {
  const count: number = ;
  return <p>{count}</p>;
}
"""
    events = await world.build(team.editor, team.project_id, {"App.tsx": broken})
    result = result_of(events)
    assert result.status is BuildStatus.FAILED
    assert result.outputs == ()
    (error,) = result.errors
    assert (error.file, error.line, error.column) == ("App.tsx", 2, 25)
    assert error.message
    # Streamed as it was found, before the result.
    assert error in [event for event in events if isinstance(event, Diagnostic)]


async def test_a_package_that_is_not_there_fails_without_the_network(
    world: BuildWorld, team: Team
) -> None:
    app = b'import pad from "left-pad";\n\nexport default () => <p>{pad("x", 4)}</p>;\n'
    result = result_of(await world.build(team.editor, team.project_id, {"App.jsx": app}))
    assert result.status is BuildStatus.FAILED
    (error,) = result.errors
    assert (error.file, error.line) == ("App.jsx", 1)
    assert 'Could not resolve "left-pad"' in error.message


async def test_a_tree_without_an_entry_point_fails_saying_so(world: BuildWorld, team: Team) -> None:
    files = {"lib/a.ts": b"export const a = 1;\n", "lib/b.ts": b"export const b = 2;\n"}
    result = result_of(await world.build(team.editor, team.project_id, files))
    assert (result.status, result.entry) == (BuildStatus.FAILED, "")
    (error,) = result.errors
    assert error.severity is Severity.ERROR
    assert "no entry point" in error.message
    assert "index.tsx" in error.message


async def test_an_output_over_the_limit_fails_clearly(world: BuildWorld, team: Team) -> None:
    files = {"App.tsx": APP, "index.tsx": INDEX, "style.css": STYLE}
    small = replace(world.limits, max_output_bytes=4096)
    result = result_of(await world.build(team.editor, team.project_id, files, limits=small))
    assert result.status is BuildStatus.FAILED
    assert result.outputs == ()
    (error,) = result.errors
    assert "more than the limit of 4096 bytes" in error.message


async def test_a_build_over_its_time_fails_as_timed_out(world: BuildWorld, team: Team) -> None:
    hasty = replace(world.limits, timeout=timedelta(milliseconds=100))
    result = result_of(await world.build(team.editor, team.project_id, SLOW_FILES, limits=hasty))
    assert result.status is BuildStatus.FAILED
    (error,) = result.errors
    assert error.message == "the build took longer than 0.1 s and was stopped"
    assert await world.live_sandboxes(team.project_id) == []


async def test_warnings_do_not_fail_a_build(world: BuildWorld, team: Team) -> None:
    index = b'const settings = { mode: "a", mode: "b" };\ndocument.title = settings.mode;\n'
    result = result_of(await world.build(team.editor, team.project_id, {"index.js": index}))
    assert result.status is BuildStatus.SUCCEEDED
    (warning,) = result.diagnostics
    assert warning.severity is Severity.WARNING
    assert (warning.file, warning.line, warning.column) == ("index.js", 1, 31)
    assert 'Duplicate key "mode"' in warning.message

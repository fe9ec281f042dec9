"""Code blocks of a chat answer become artifact candidates."""

from __future__ import annotations

import pytest

from server.artifacts.extract import CodeBlock, extract_code_blocks


def test_each_fenced_block_becomes_one_with_title_filename_kind_and_type() -> None:
    answer = """Sure! Here's a small server.

## The Flask app:

```python
from flask import Flask
app = Flask(__name__)
```

And a **client** for it:

```js
fetch("/").then(r => r.text())
```

That's all.
"""
    assert extract_code_blocks(answer) == [
        CodeBlock(
            language="python",
            filename="main.py",
            title="The Flask app",
            content="from flask import Flask\napp = Flask(__name__)\n",
            kind="code",
            content_type="text/x-python",
        ),
        CodeBlock(
            language="javascript",
            filename="main.js",
            title="And a client for it",
            content='fetch("/").then(r => r.text())\n',
            kind="code",
            content_type="text/javascript",
        ),
    ]


@pytest.mark.parametrize(
    ("fence", "hint", "filename", "kind", "content_type"),
    [
        ("python", "# file: app/server.py", "app/server.py", "code", "text/x-python"),
        ("javascript", "// file: src/index.js", "src/index.js", "code", "text/javascript"),
        ("html", "<!-- file: index.html -->", "index.html", "html", "text/html"),
        ("css", "/* file: site.css */", "site.css", "code", "text/css"),
        ("sql", "-- filename: schema.sql", "schema.sql", "code", "application/sql"),
        ("json", "// File: package.json", "package.json", "code", "application/json"),
    ],
)
def test_a_file_hint_names_the_file_and_is_removed(
    fence: str, hint: str, filename: str, kind: str, content_type: str
) -> None:
    [block] = extract_code_blocks(f"```{fence}\n{hint}\nbody line\n```\n")
    assert (block.filename, block.kind, block.content_type) == (filename, kind, content_type)
    assert block.content == "body line\n"
    assert block.title == filename  # no text above it


def test_a_hint_alone_gives_the_language() -> None:
    [block] = extract_code_blocks("```\n# file: tool.py\nprint(1)\n```")
    assert (block.language, block.filename, block.content_type) == (
        "python",
        "tool.py",
        "text/x-python",
    )


@pytest.mark.parametrize(
    ("info", "language", "filename"),
    [
        ('python title="app.py"', "python", "app.py"),
        ("python filename=app.py", "python", "app.py"),
        ("python:app.py", "python", "app.py"),
        ("{.python}", "python", "main.py"),
        ("app.py", "python", "app.py"),
        ('python title="My great app"', "python", "main.py"),  # a title, not a file
        ("Py", "python", "main.py"),
        ("tsx", "tsx", "App.tsx"),
        ("diff", "diff", "snippet.txt"),
    ],
)
def test_info_strings(info: str, language: str, filename: str) -> None:
    [block] = extract_code_blocks(f"```{info}\nx\n```")
    assert (block.language, block.filename) == (language, filename)


def test_blocks_that_would_share_a_name_are_numbered() -> None:
    answer = "\n".join(
        ["```python", "# file: main.py", "a = 1", "```"]
        + ["```python", "b = 2", "```"] * 2
        + ["```python", "# file: main.py", "c = 3", "```"]
    )
    names = [block.filename for block in extract_code_blocks(answer)]
    # Derived names are numbered; an explicit name is kept (it rewrites that file).
    assert names == ["main.py", "main_2.py", "main_3.py", "main.py"]


@pytest.mark.parametrize(
    ("language", "kind"),
    [
        ("html", "html"),
        ("jsx", "react"),
        ("tsx", "react"),
        ("react", "react"),
        ("markdown", "markdown"),
        ("md", "markdown"),
        ("python", "code"),
        ("", "code"),
    ],
)
def test_kind_follows_the_language(language: str, kind: str) -> None:
    [block] = extract_code_blocks(f"```{language}\ncontent\n```")
    assert block.kind == kind


def test_a_longer_fence_holds_inner_fences() -> None:
    answer = "Here is a README:\n\n````markdown\n# Demo\n\n```python\nprint(1)\n```\n````\n"
    [block] = extract_code_blocks(answer)
    assert block.kind == "markdown"
    assert block.filename == "README.md"
    assert block.content == "# Demo\n\n```python\nprint(1)\n```\n"


def test_a_tilde_fence_holds_backtick_fences_and_vice_versa() -> None:
    answer = "~~~md\n```\ninner\n```\n~~~\n```text\n~~~\nalso inner\n~~~\n```\n"
    first, second = extract_code_blocks(answer)
    assert first.content == "```\ninner\n```\n"
    assert second.content == "~~~\nalso inner\n~~~\n"


def test_a_closing_fence_may_be_longer_but_must_be_bare() -> None:
    answer = "```python\nx = 1\n``` not a close\ny = 2\n`````\nafter\n"
    [block] = extract_code_blocks(answer)
    assert block.content == "x = 1\n``` not a close\ny = 2\n"
    assert block.complete


def test_an_unterminated_fence_runs_to_the_end_and_says_so() -> None:
    [block] = extract_code_blocks("Start:\n```python\ndef f():\n    return 1\n")
    assert block.content == "def f():\n    return 1\n"
    assert not block.complete
    assert block.title == "Start"


def test_a_block_without_language() -> None:
    [block] = extract_code_blocks("Output:\n```\n$ ls\nREADME\n```")
    assert (block.language, block.filename, block.kind, block.content_type) == (
        "",
        "snippet.txt",
        "code",
        "text/plain",
    )


def test_crlf_and_cr_line_endings_become_lf() -> None:
    lf = "Intro\n\n```python\r\nif x:\n    y()\n```\n"
    for text in (lf.replace("\n", "\r\n"), lf.replace("\n", "\r"), lf):
        [block] = extract_code_blocks(text)
        assert block.content == "if x:\n    y()\n"
        assert block.title == "Intro"


def test_inline_triple_backticks_are_not_a_fence() -> None:
    assert extract_code_blocks("Use ```code``` inline, and ``` `x` ``` too.") == []


def test_empty_blocks_are_skipped() -> None:
    assert extract_code_blocks("```python\n\n   \n```\n```js\n// file: a.js\n```\n") == []


def test_a_fence_in_a_list_item_is_dedented() -> None:
    answer = "1. Install it:\n\n   ```bash\n   pip install flask\n     --quiet\n   ```\n"
    [block] = extract_code_blocks(answer)
    assert block.content == "pip install flask\n  --quiet\n"
    assert (block.language, block.filename, block.title) == ("bash", "script.sh", "Install it")


def test_titles() -> None:
    long_line = "word " * 40
    answer = (
        "# Heading that is not nearest\n\nSome prose\n\n```python\na\n```\n"
        "```python\nb\n```\n"  # nothing between: the filename
        f"{long_line}\n```python\nc\n```\n"
        "> **Note:** use `ruff`:\n```toml\nd\n```\n"
    )
    titles = [block.title for block in extract_code_blocks(answer)]
    assert titles[:2] == ["Some prose", "main_2.py"]
    assert len(titles[2]) == 100
    assert titles[2].endswith("…")
    assert titles[3] == "Note: use ruff"


@pytest.mark.parametrize(
    ("hint", "filename"),
    [
        ("# file: ../../etc/passwd.py", "etc/passwd.py"),
        ("# file: /abs/path/x.py", "abs/path/x.py"),
        ("# file: ./src/./a.py", "src/a.py"),
        ("# file: we$ird;name.py", "we_ird_name.py"),
        ("# file: ..", "main.py"),
    ],
)
def test_hinted_paths_are_made_safe(hint: str, filename: str) -> None:
    [block] = extract_code_blocks(f"```python\n{hint}\npass\n```")
    assert block.filename == filename

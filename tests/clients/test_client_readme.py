"""Every ```python block of clients/python/README.md runs, in order, against the real server
(each one a script of its own; the address and the example account are this test's)."""

from __future__ import annotations

import asyncio
import re
import sys
import uuid
from pathlib import Path

from server.app import ForgeServer

README = Path(__file__).resolve().parents[2] / "clients" / "python" / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def examples() -> list[str]:
    return BLOCK.findall(README.read_text())


def test_the_readme_has_examples() -> None:
    blocks = examples()
    assert len(blocks) >= 4
    assert all("localhost:50051" in block for block in blocks)


async def test_the_readme_examples_run(forge: ForgeServer, tmp_path: Path) -> None:
    domain = f"readme-{uuid.uuid4().hex[:8]}.example.com"
    outputs: list[str] = []
    for number, block in enumerate(examples()):
        script = tmp_path / f"example_{number}.py"
        script.write_text(
            block.replace("localhost:50051", f"127.0.0.1:{forge.port}").replace(
                "@example.com", f"@{domain}"
            )
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(proc.communicate(), 120)
        text = output.decode(errors="replace")
        assert proc.returncode == 0, f"README example {number + 1} failed:\n{block}\n{text}"
        outputs.append(text)

    chat, errors, sync, run = outputs[:4]
    assert "hello" in chat.lower()
    assert "EMAIL_TAKEN (request " in errors
    assert "email:" in errors
    assert f"ada@{domain}" in sync
    assert run.strip().splitlines()[-1].endswith("completed")

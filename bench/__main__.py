"""python -m bench [name …] [--update-readme]: runs the benchmarks and prints one table."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import importlib
import platform
import re
import time
from pathlib import Path

from bench.harness import Report
from bench.infra import infrastructure

BENCHMARKS = ["chat", "unary", "envoy", "sandbox", "login", "artifacts", "runs", "scaling"]
README = Path(__file__).with_name("README.md")
MARKER = re.compile(r"(<!-- results:begin -->\n).*?(<!-- results:end -->)", re.DOTALL)


async def main(names: list[str], update_readme: bool) -> None:
    report = Report()
    started = time.perf_counter()
    async with infrastructure() as infra:
        for name in names:
            module = importlib.import_module(f"bench.bench_{name}")
            print(
                f"== {name}: {module.__doc__.strip().splitlines()[0] if module.__doc__ else ''}",
                flush=True,
            )
            began = time.perf_counter()
            await module.run(infra, report)
            print(f"== {name}: {time.perf_counter() - began:.0f} s", flush=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    table = report.markdown()
    header = (
        f"Run {stamp} on {platform.machine()}, {platform.python_version()}, "
        f"{time.perf_counter() - started:.0f} s."
    )
    print("\n" + header + "\n\n" + table)
    if update_readme:
        text = README.read_text()
        README.write_text(
            MARKER.sub(lambda m: f"{m.group(1)}{header}\n\n{table}\n{m.group(2)}", text)
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("names", nargs="*", help=f"any of {', '.join(BENCHMARKS)} (default: all)")
    parser.add_argument("--update-readme", action="store_true")
    options = parser.parse_args()
    unknown = set(options.names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmarks: {', '.join(sorted(unknown))}")
    asyncio.run(main(options.names or BENCHMARKS, options.update_readme))

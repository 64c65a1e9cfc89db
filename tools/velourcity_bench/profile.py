"""``velourcity bench --profile``: py-spy on every worker during a phase's measured window.

Each worker gets ``py-spy record -p PID -d SECONDS -f raw -o FILE --nonblocking`` (py-spy
comes with the ``dev`` extra; it needs ptrace, which root has). The raw folded stacks are kept
(``profiles/<label>-worker<i>.txt``; flamegraph.pl or speedscope read them) beside a short
summary (``.md``): the functions with the most self time and the files with the most
inclusive time, as shares of the samples.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from velourcity_bench.stack import Stack

TOP = 15
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def py_spy() -> str:
    """The py-spy next to this interpreter, or on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if not found:
        raise RuntimeError("--profile needs py-spy: pip install -e '.[dev]' (make install)")
    return found


def _short(path: str) -> str:
    for marker in ("site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            return path.split("/", 1)[1] if marker == "/lib/python3" else path
    return path.split("/wt-bench/")[-1].split("/work/main/")[-1]


def summarize(folded: Path, top: int = TOP) -> dict[str, Any]:
    """Top functions by self time and top files by inclusive time, in % of the samples."""
    self_time: Counter[str] = Counter()
    by_file: Counter[str] = Counter()
    total = 0
    for line in folded.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = [_FRAME.match(f) for f in stack.split(";")]
        leaf = frames[-1]
        if leaf is not None:
            self_time[f"{leaf['function']} ({_short(leaf['file'])})"] += samples
        for name in {_short(m["file"]) for m in frames if m is not None and m["file"]}:
            by_file[name] += samples

    def share(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {"name": name, "percent": round(100 * n / max(total, 1), 1)}
            for name, n in counter.most_common(top)
        ]

    return {"samples": total, "self": share(self_time), "files": share(by_file)}


def summary_markdown(label: str, summary: dict[str, Any]) -> str:
    lines = [
        f"# py-spy: {label}",
        "",
        f"{summary['samples']:,} samples (100 a second, idle time left out).",
        "",
        "| self time | function |",
        "| ---: | --- |",
    ]
    lines += [f"| {row['percent']:.1f} % | `{row['name']}` |" for row in summary["self"]]
    lines += ["", "| inclusive time | file |", "| ---: | --- |"]
    lines += [f"| {row['percent']:.1f} % | `{row['name']}` |" for row in summary["files"]]
    return "\n".join(lines) + "\n"


@dataclass
class Profiler:
    """Starts py-spy on a stack's workers when a phase's measured window opens; writes the
    folded stacks and summaries under ``directory`` once they finish."""

    directory: Path
    labels: list[str] | None = None
    """Only these scenarios (``None``: every one)."""
    _running: list[tuple[str, Path, subprocess.Popen[bytes]]] = field(default_factory=list)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)

    def wants(self, scenario: str) -> bool:
        return self.labels is None or scenario in self.labels

    def start(self, stack: Stack, label: str, seconds: float) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for index, worker in enumerate(stack.workers):
            name = f"{label}-worker{index}"
            raw = self.directory / f"{name}.txt"
            process = subprocess.Popen(  # noqa: S603 (py-spy from our venv)
                [
                    py_spy(),
                    "record",
                    "-p",
                    str(worker.pid),
                    "-d",
                    str(max(1, int(seconds))),
                    "-f",
                    "raw",
                    "-o",
                    str(raw),
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
                stderr=(self.directory / f"{name}.log").open("wb"),
            )
            self._running.append((name, raw, process))

    def finish(self) -> None:
        """Wait for every py-spy started so far and summarize what it recorded."""
        for name, raw, process in self._running:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
            if not raw.exists():
                self.results[name] = {"error": f"py-spy wrote nothing; see {name}.log"}
                continue
            summary = summarize(raw)
            path = raw.with_suffix(".md")
            path.write_text(summary_markdown(name, summary))
            self.results[name] = summary | {"raw": str(raw), "summary": str(path)}
        self._running.clear()

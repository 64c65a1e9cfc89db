"""One row per scenario, and the run's table printed and saved as JSON and Markdown."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

COLUMNS = (
    ("scenario", "scenario"),
    ("published", "published"),
    ("delivered", "delivered"),
    ("lost", "lost"),
    ("duplicates", "duplicates"),
    ("dead_lettered", "dead-lettered"),
    ("quarantined", "quarantined"),
    ("max_delay_s", "longest delay (s)"),
    ("verdict", "verdict"),
)


@dataclass(kw_only=True)
class Tally:
    """What one scenario did. ``delivered`` counts (event, endpoint) pairs answered ``200`` at
    least once; ``duplicates`` the ``200`` answers beyond the first of a pair."""

    scenario: str
    published: int = 0
    expected: int = 0
    """(event, endpoint) pairs that should arrive."""
    delivered: int = 0
    lost: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    quarantined: int = 0
    max_delay_s: float | None = None
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    """Why the scenario failed its targets (empty: it met them)."""
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def duplicate_rate(self) -> float:
        return self.duplicates / self.expected if self.expected else 0.0

    @property
    def verdict(self) -> str:
        return "ok" if not self.problems else "FAIL"

    def cell(self, name: str) -> str:
        if name == "duplicates":
            return f"{self.duplicates} ({self.duplicate_rate:.2%})" if self.expected else "0"
        if name == "max_delay_s":
            return "-" if self.max_delay_s is None else f"{self.max_delay_s:.1f}"
        return str(getattr(self, name))

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {
            "duplicate_rate": self.duplicate_rate,
            "verdict": self.verdict,
        }


def markdown_table(tallies: Sequence[Tally]) -> str:
    head = "| " + " | ".join(title for _, title in COLUMNS) + " |"
    rule = "| " + " | ".join("---" for _ in COLUMNS) + " |"
    rows = ["| " + " | ".join(t.cell(name) for name, _ in COLUMNS) + " |" for t in tallies]
    return "\n".join([head, rule, *rows])


def markdown_report(tallies: Sequence[Tally], *, command: str) -> str:
    lines = [
        f"# Chaos run {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}",
        "",
        f"`{command}`",
        "",
        markdown_table(tallies),
        "",
    ]
    for tally in tallies:
        lines.append(
            f"- **{tally.scenario}** ({tally.seconds:.0f} s): "
            + ("; ".join(tally.problems) if tally.problems else "met its targets")
        )
        for name, value in tally.notes.items():
            lines.append(f"  - {name}: {value}")
    return "\n".join(lines) + "\n"


def save(tallies: Sequence[Tally], directory: Path, *, command: str) -> tuple[Path, Path]:
    """Write ``chaos-<time>.json`` and ``.md`` (and ``latest.*``) under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    data = json.dumps(
        {"command": command, "at": stamp, "scenarios": [t.as_dict() for t in tallies]},
        indent=2,
        default=str,
    )
    text = markdown_report(tallies, command=command)
    json_path, md_path = directory / f"chaos-{stamp}.json", directory / f"chaos-{stamp}.md"
    for path, content in ((json_path, data), (md_path, text)):
        path.write_text(content)
        (directory / f"latest{path.suffix}").write_text(content)
    return json_path, md_path

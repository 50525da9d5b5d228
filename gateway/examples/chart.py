"""The demo worker: numbers in, a PNG chart and a CSV out — no LLM, no account, no dependency.

Run by the dispatcher as ``relayboard example chart`` (the ``charts`` example profile's command),
with the worker variables set (``RELAYBOARD_TASK_ID``, ``RELAYBOARD_LEASE``, …; see
docs/dispatcher.md). It reads the numbers from, in order:

1. the task body — lines like ``Jan: 120``, ``Jan,120`` or ``Jan 120``, or just ``3 5 8 13``;
2. a CSV file in the workspace, or among the parent tasks' files (label column, number column);
3. otherwise six months of made-up sales figures (so "Chart the sales" works out of the box),

draws a bar chart (a line chart for more than 12 points, or when the body says "line"), writes
``chart.png`` and ``data.csv`` into the workspace and completes the task with both as artifacts.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import math
import random
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.examples.png import Canvas, text_width
from gateway.worker_api.client import call
from kanban import Task

Series = list[tuple[str, float]]

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
NUMBER = r"[-+]?\d[\d,]*(?:\.\d+)?|[-+]?\.\d+"
LABELLED = re.compile(
    rf"^\s*[-*]?\s*(?P<label>[^:,;=\t]+?)\s*(?P<sep>[:,;=\t ])\s*(?P<value>{NUMBER})\s*$")
PALETTE = [(59, 91, 219), (12, 166, 120), (240, 140, 0), (224, 49, 49), (132, 94, 247)]


@dataclass(frozen=True)
class ChartResult:
    series: Series
    source: str  # "body", "csv:<name>" or "sample"
    kind: str  # "bar" or "line"
    png: bytes
    csv: str


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def parse_body(text: str) -> Series:
    """Labelled lines (``Jan: 10``) or a run of bare numbers; empty when there are none."""
    labelled: Series = []
    for line in text.splitlines():
        m = LABELLED.match(line)
        # "3 5 8" is a run of numbers, but "3: 5" labels 5 with "3".
        numeric_label = re.fullmatch(rf"(?:{NUMBER}|\s)+", m.group("label")) if m else None
        if m and (m.group("sep") in ":=\t" or not numeric_label):
            value = _number(m.group("value"))
            if value is not None:
                labelled.append((m.group("label").strip()[:24], value))
    if len(labelled) >= 2:
        return labelled
    # "Jan 10, Feb 12, Mar 9" on one line.
    pairs = re.findall(r"([A-Za-z][A-Za-z ]{0,20}?)\s*[:=]?\s+([-+]?\d+(?:\.\d+)?)\b", text)
    if len(pairs) >= 2:
        return [(label.strip()[:24], float(value)) for label, value in pairs]
    bare = [v for v in (_number(t) for t in re.findall(NUMBER, text)) if v is not None]
    if len(bare) >= 2 and not re.search(r"[A-Za-z]{3,}\s*[:=]", text):
        return [(str(i + 1), v) for i, v in enumerate(bare)]
    return labelled if len(labelled) >= 2 else []


def parse_csv(text: str) -> Series:
    """First text column as labels, the last numeric column as values (a header row is skipped)."""
    rows = [r for r in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in r)]
    out: Series = []
    for index, row in enumerate(rows):
        numbers = [(i, _number(c.strip())) for i, c in enumerate(row)]
        values = [(i, v) for i, v in numbers if v is not None]
        if not values:
            continue  # a header or a note
        col, value = values[-1]
        label = next((c.strip() for i, c in enumerate(row) if i != col and c.strip()),
                     str(index + 1))
        out.append((label[:24], value))
    return out


def sample(seed: int) -> Series:
    rng = random.Random(seed)
    value = rng.uniform(80, 140)
    out: Series = []
    for month in MONTHS[:6]:
        value = max(10.0, value * rng.uniform(0.88, 1.25))
        out.append((month, round(value, 1)))
    return out


def find_series(task: Task, csv_files: Sequence[Path], seed: int) -> tuple[Series, str]:
    body = parse_body(f"{task.body}")
    if body:
        return body, "body"
    for path in csv_files:
        try:
            parsed = parse_csv(path.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            continue
        if parsed:
            return parsed, f"csv:{path.name}"
    return sample(seed), "sample"


def render(series: Series, title: str, kind: str) -> bytes:
    width, height = 800, 480
    left, right, top, bottom = 90, 30, 70, 70
    canvas = Canvas(width, height)
    ink, grid, muted = (33, 37, 41), (226, 230, 234), (110, 118, 125)
    canvas.text(left, 24, title[:56], ink, scale=3)
    values = [v for _, v in series]
    lo, hi = min(0.0, min(values)), max(values)
    if hi == lo:
        hi = lo + 1
    step = _nice_step((hi - lo) / 5)
    lo = step * (lo // step)
    hi = step * -(-hi // step)
    plot_w, plot_h = width - left - right, height - top - bottom

    def y_of(v: float) -> int:
        return int(top + plot_h - (v - lo) / (hi - lo) * plot_h)

    tick = lo
    while tick <= hi + step / 2:
        y = y_of(tick)
        canvas.rect(left, y, width - right, y, grid)
        label = _fmt(tick)
        canvas.text(left - 10 - text_width(label), y - 7, label, muted)
        tick += step
    canvas.rect(left, top, left, top + plot_h, ink)
    canvas.rect(left, y_of(max(lo, 0)), width - right, y_of(max(lo, 0)), ink)
    n = len(series)
    slot = plot_w / n
    every = max(1, -(-n * 40 // plot_w))  # skip labels that would overlap
    points = []
    for i, (label, value) in enumerate(series):
        cx = int(left + slot * (i + 0.5))
        if kind == "bar":
            half = max(1, int(slot * 0.32))
            canvas.rect(cx - half, y_of(value), cx + half, y_of(max(lo, 0)),
                        PALETTE[0] if value >= 0 else PALETTE[3])
        points.append((cx, y_of(value)))
        if i % every == 0:
            short = label[:6]
            canvas.text(cx - text_width(short) // 2, top + plot_h + 12, short, muted)
    if kind == "line":
        for (x0, y0), (x1, y1) in itertools.pairwise(points):
            canvas.line(x0, y0, x1, y1, PALETTE[0], width=3)
        for x, y in points:
            canvas.dot(x, y, 4, PALETTE[1])
    return canvas.png()


def _nice_step(raw: float) -> float:
    """1, 2, 2.5 or 5 times a power of ten, at least ``raw``: gridlines a person can read."""
    if raw <= 0:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(raw))
    return next(f * magnitude for f in (1, 2, 2.5, 5, 10) if f * magnitude >= raw)


def _fmt(value: float) -> str:
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if abs(value) >= 10_000:
        return f"{value / 1000:g}K"
    return f"{value:g}"


def to_csv(series: Series) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["label", "value"])
    for label, value in series:
        writer.writerow([label, f"{value:g}"])
    return out.getvalue()


def make_chart(task: Task, csv_files: Sequence[Path] = ()) -> ChartResult:
    series, source = find_series(task, csv_files, seed=task.id)
    kind = "line" if len(series) > 12 or re.search(r"\bline\b", task.body, re.I) else "bar"
    title = re.sub(r"^\s*chart\s+(the\s+)?", "", task.title, flags=re.I).strip() or task.title
    return ChartResult(series, source, kind, render(series, title, kind), to_csv(series))


def write_chart(task: Task, workspace: Path, parent_csvs: Sequence[Path]
                ) -> tuple[str, list[Path]]:
    """Chart into ``workspace``: a one-line summary and the two files written."""
    csv_files = [*sorted(workspace.glob("*.csv")), *parent_csvs]
    result = make_chart(task, csv_files)
    workspace.mkdir(parents=True, exist_ok=True)
    png, data = workspace / "chart.png", workspace / "data.csv"
    png.write_bytes(result.png)
    data.write_text(result.csv, encoding="utf-8")
    values = [v for _, v in result.series]
    where = {"body": "the task text", "sample": "sample sales figures (no numbers given)"}.get(
        result.source, result.source.removeprefix("csv:"))
    summary = (f"{result.kind} chart of {len(values)} values from {where}: "
               f"min {min(values):g}, max {max(values):g}, total {sum(values):g}")
    return summary, [png, data]


def run(environ: Mapping[str, str]) -> int:
    """The worker: chart the task's numbers and complete it with the files, through the worker
    API like any worker. Exit code."""
    try:
        api = Path(environ["RELAYBOARD_API"])
        task_id = int(environ["RELAYBOARD_TASK_ID"])
        lease = environ["RELAYBOARD_LEASE"]
        workspace = Path(environ.get("RELAYBOARD_WORKSPACE") or ".")
    except (KeyError, ValueError):
        print("error: run me as a worker (the dispatcher sets RELAYBOARD_API, "
              "RELAYBOARD_TASK_ID and RELAYBOARD_LEASE)", file=sys.stderr)
        return 2

    def ask(verb: str, args: dict[str, Any]) -> Any:
        return call(api, verb, args, task_id=task_id, lease=lease,
                    board=environ.get("RELAYBOARD_BOARD") or None)["json"]

    shown = ask("show", {"task_id": task_id})
    task = Task(**{f.name: shown[f.name] for f in dataclasses.fields(Task) if f.name in shown})
    print(f"charting task #{task.id}: {task.title}", flush=True)
    parent_csvs: list[Path] = []
    for parent in task.parents:
        other = ask("show", {"task_id": parent})
        parent_csvs += [Path(a) for a in other.get("artifacts") or []
                        if a.lower().endswith(".csv")]
    summary, files = write_chart(task, workspace, parent_csvs)
    print(summary, flush=True)
    ask("complete", {"result": summary, "summary": summary,
                     "artifacts": [str(f) for f in files]})
    return 0


def main(environ: Mapping[str, str]) -> int:
    return run(environ)


if __name__ == "__main__":  # python -m gateway.examples.chart
    import os

    sys.exit(main(os.environ))

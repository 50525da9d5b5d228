"""``relayboard dashboard``, ``relayboard example chart`` and ``relayboard profile example``."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from gateway.examples.chart import make_chart, parse_body, parse_csv
from kanban.models import Task
from tests.gateway.conftest import Cli, assert_one_error_line, dashboard_process


def test_profile_example_creates_the_chart_worker_profile(rb: Cli) -> None:
    made = rb.json("profile", "example", "charts", "--kind", "chart")
    assert made["command"] == ["relayboard", "example", "chart"]
    assert made["description_auto"] is False and "chart" in made["description"]
    again = rb.main("profile", "example", "charts")
    assert_one_error_line(again, contains="already exists")


def test_example_chart_outside_a_worker_says_how_to_run_it(rb: Cli) -> None:
    proc = rb.sub("example", "chart")
    assert proc.returncode == 2 and "run me as a worker" in proc.stderr


def test_dashboard_refuses_an_open_address_without_a_token(rb: Cli) -> None:
    proc = rb.sub("dashboard", "--host", "0.0.0.0", "--port", "0")
    assert_one_error_line(proc, contains="token")


def test_dashboard_serves_the_board_and_stops_on_sigint(rb: Cli) -> None:
    rb.create("visible from the browser")
    with dashboard_process(rb) as served:
        url = served.url
        board = httpx.get(url + "api/board", timeout=10).json()
        assert [c["title"] for c in board["columns"][2]["tasks"]] == ["visible from the browser"]
        chat = httpx.post(url + "chat/messages", json={"text": "/status"},
                          headers={"Origin": url.rstrip("/")}, timeout=10)
        assert chat.status_code == 201
        deadline = time.monotonic() + 10
        texts: list[str] = []
        while time.monotonic() < deadline and len(texts) < 2:  # the reply is asynchronous
            texts = [m["text"] for m in httpx.get(url + "chat/messages", timeout=10)
                     .json()["messages"]]
            time.sleep(0.05)
        assert texts[0] == "/status" and "gateway run" in texts[1]
    assert served.proc.returncode == 0, served.stderr
    assert "Traceback" not in served.stderr


def test_chart_reads_numbers_in_the_shapes_people_write() -> None:
    assert parse_body("Jan: 10\nFeb: 12.5\nMar: 1,200") == [("Jan", 10), ("Feb", 12.5),
                                                           ("Mar", 1200)]
    assert parse_body("Sales: Jan 10, Feb 12") == [("Jan", 10), ("Feb", 12)]
    assert parse_body("3 5 8 13") == [("1", 3), ("2", 5), ("3", 8), ("4", 13)]
    assert parse_body("1: -29\n2: -56") == [("1", -29), ("2", -56)]
    assert parse_body("Chart the sales for 2024") == []
    assert parse_csv("region,sales\nNorth,120\nSouth,90\n") == [("North", 120), ("South", 90)]


def test_chart_png_is_a_valid_image_with_the_data(tmp_path: Path) -> None:
    task = Task.placeholder(3, "test")
    task.title, task.body, task.status = "Chart the sales", "", "running"
    sample = make_chart(task)
    assert sample.source == "sample" and len(sample.series) == 6 and sample.kind == "bar"
    assert sample.png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(sample.png[16:20], "big"), int.from_bytes(sample.png[20:24],
                                                                             "big")
    assert (width, height) == (800, 480)
    assert make_chart(task).png == sample.png  # the sample figures are stable per task
    csv_file = tmp_path / "in.csv"
    csv_file.write_text("month,value\nJan,1\nFeb,2\n", encoding="utf-8")
    from_csv = make_chart(task, [csv_file])
    assert (from_csv.source, from_csv.csv) == ("csv:in.csv", "label,value\nJan,1\nFeb,2\n")
    task.body = "\n".join(f"day {i}: {i}" for i in range(30))
    assert make_chart(task).kind == "line"

"""``--host LABEL`` on create, from the CLI and from chat (one declaration), shown by ``show``."""

from __future__ import annotations

from gateway.commands import parse_command
from gateway.commands.verbs import CreateRequest
from tests.gateway.conftest import Cli


def test_create_with_a_host_label_and_show_it(rb: Cli) -> None:
    labelled = rb.create("train the model", "--host", "gpu-1")
    anywhere = rb.create("summarise")
    assert rb.show(labelled)["host_label"] == "gpu-1"
    assert rb.show(anywhere)["host_label"] is None
    text = rb.ok("kanban", "show", str(labelled))
    assert [line.split() for line in text.splitlines() if line.split()[:1] == ["host"]] == [
        ["host", "gpu-1"]]
    assert ["host", "any"] in [line.split() for line in
                               rb.ok("kanban", "show", str(anywhere)).splitlines()]
    error = rb.fail("kanban", "create", "x", "--host", "two words")
    assert str(error) == ("invalid host label name 'two words': use 1-64 characters of "
                          "letters, digits, '_', '.' or '-', starting with a letter or digit")


def test_chat_create_takes_the_same_flag() -> None:
    request = parse_command("/kanban create render the video --host gpu-1")
    assert isinstance(request, CreateRequest)
    assert (request.title, request.host) == ("render the video", "gpu-1")

"""A verb's JSON arguments derived from its declaration: a valid JSON Schema for every verb,
limits identical to the CLI's click types, and one-line refusals naming the field."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from gateway.commands import REGISTRY, Request, UsageError
from gateway.commands.declare import BoundedInt, FiniteFloat, declared, param_of
from gateway.commands.json_args import json_schema, request_from_json
from gateway.commands.verbs import (
    BlockRequest,
    ClaimRequest,
    CompleteRequest,
    CreateRequest,
    EventsRequest,
    ListRequest,
    SubscribeRequest,
    UnblockRequest,
)
from tests.gateway.conftest import Cli

VERBS = sorted(REGISTRY.values(), key=lambda cls: cls.PATH)


@pytest.mark.parametrize("cls", VERBS, ids=lambda cls: " ".join(cls.PATH))
@pytest.mark.parametrize("chat", [True, False])
def test_every_verb_has_a_valid_closed_schema_of_its_declared_fields(
        cls: type[Request], chat: bool) -> None:
    schema = json_schema(cls, chat=chat)
    jsonschema.Draft202012Validator.check_schema(schema)
    offered = [f.name for f, spec in declared(cls) if spec.chat or not chat]
    assert list(schema["properties"]) == offered
    assert schema["additionalProperties"] is False
    assert set(schema.get("required", [])) <= set(offered)


@pytest.mark.parametrize("cls", VERBS, ids=lambda cls: " ".join(cls.PATH))
def test_numeric_limits_are_the_click_types_limits(cls: type[Request]) -> None:
    properties = json_schema(cls, chat=False)["properties"]
    for f, spec in declared(cls):
        kind = param_of(f, spec).type
        prop = properties[f.name]
        prop = prop.get("items", prop)
        if isinstance(kind, BoundedInt):
            assert (prop["type"], prop["minimum"], prop["maximum"]) == (
                "integer", kind.low, kind.high)
        elif isinstance(kind, FiniteFloat):
            assert (prop["type"], prop["maximum"], prop.get("minimum")) == (
                "number", kind.high, kind.low)


def test_types_of_the_create_schema() -> None:
    props = json_schema(CreateRequest)["properties"]
    assert props["title"] == {"type": "string"}
    assert props["triage"]["type"] == "boolean"
    assert props["parents"]["type"] == "array" and props["parents"]["items"]["type"] == "integer"
    assert props["initial_status"]["enum"] == ["running", "blocked"]
    assert (props["priority"]["default"], props["workspace"]["default"]) == (0, "scratch")
    assert props["body"]["description"] == "Task description."
    assert "attachments" not in props  # a host path: not offered to chat surfaces
    assert "attachments" in json_schema(CreateRequest, chat=False)["properties"]
    assert json_schema(CreateRequest)["required"] == ["title"]
    assert json_schema(CompleteRequest, chat=False)["properties"]["metadata"]["type"] == "object"


def test_priority_out_of_range_is_refused_as_the_cli_refuses_it(rb: Cli) -> None:
    too_big = 2 ** 63
    with pytest.raises(UsageError) as caught:
        request_from_json(CreateRequest, {"title": "t", "priority": too_big})
    field, _, reason = str(caught.value).partition(": ")
    assert field == "priority"
    assert reason == f"{too_big} is out of range ({-2 ** 63} to {2 ** 63 - 1})"
    cli = rb.invoke("kanban", "create", "t", "--priority", str(too_big))
    assert cli.exit_code == 2 and reason in cli.output


def test_a_valid_object_validates_and_builds_the_request() -> None:
    args: dict[str, Any] = {"title": "Chart the sales", "parents": [3, 4], "triage": True,
                            "priority": -2, "skills": ["charts"], "assignee": ""}
    jsonschema.validate({k: v for k, v in args.items() if v != ""}, json_schema(CreateRequest))
    request = request_from_json(CreateRequest, args, fixed={"board": "ops"})
    assert request == CreateRequest(title="Chart the sales", parents=(3, 4), triage=True,
                                    priority=-2, skills=("charts",), board="ops")


def test_forms_of_words_flags_objects_and_absent_values() -> None:
    # A reason is one word, so a leading number is never read as a task id.
    block = request_from_json(BlockRequest, {"words": "12 tests fail"})
    assert block.words == ("12 tests fail",)
    done = request_from_json(CompleteRequest, {"metadata": {"rows": 3}, "result": None},
                             chat=False)
    assert (done.metadata, done.result) == ('{"rows": 3}', None)
    listed = request_from_json(ListRequest, {"status": "ready", "archived": False})
    assert (listed.status, listed.archived) == ("ready", False)
    unblock = request_from_json(UnblockRequest, {"task_ids": [1, "2"]})
    assert unblock.task_ids == (1, 2)
    claim = request_from_json(ClaimRequest, {"task_id": 1, "ttl": 2.5})
    assert claim.ttl == 2.5


@pytest.mark.parametrize(("cls", "args", "message"), [
    (CreateRequest, {"title": "t", "colour": "red"}, "unknown field 'colour' (fields: title,"),
    (CreateRequest, {"title": "t", "attachments": ["/etc/passwd"]}, "unknown field 'attach"),
    (CreateRequest, {}, "title is required"),
    (CreateRequest, {"title": 5}, "title: 5 is not a string"),
    (CreateRequest, {"title": "t", "triage": "yes"}, 'triage: "yes" is not true or false'),
    (CreateRequest, {"title": "t", "parents": 3}, "parents: 3 is not an array"),
    (CreateRequest, {"title": "t", "initial_status": "done"}, "initial_status: "),
    (CreateRequest, {"title": "t", "max_runtime": 1.5}, "max_runtime: '1.5' is not a valid"),
    (ClaimRequest, {"task_id": 1, "ttl": True}, "ttl: true is not a number"),
    (ClaimRequest, {"task_id": 1, "ttl": 1e309}, "ttl: inf is not a finite number"),
    (EventsRequest, {"limit": 0}, "limit: 0 is out of range (1 to 100000)"),
    (EventsRequest, {"follow": True}, "unknown field 'follow'"),
    (CompleteRequest, {"metadata": [1]}, "metadata: must be a JSON object"),
    (SubscribeRequest, {"task_id": 1, "chat": "C1", "platform": "web"},
     "platform is set here and cannot be given"),
    (CreateRequest, ["not", "an", "object"], "the arguments must be a JSON object"),
])
def test_bad_json_is_one_line_naming_the_field(cls: type[Request], args: Any,
                                               message: str) -> None:
    fixed = {"platform": "web"} if cls is SubscribeRequest else None
    with pytest.raises(UsageError) as caught:
        request_from_json(cls, args, fixed=fixed)
    text = str(caught.value)
    assert message in text and "\n" not in text, text


def test_names_and_defaults_of_a_surface() -> None:
    names = {"max_runtime": "max_runtime_seconds", "model": "model_override"}
    schema = json_schema(CreateRequest, names=names)
    assert {"max_runtime_seconds", "model_override"} <= set(schema["properties"])
    assert "model" not in schema["properties"]
    made = request_from_json(CreateRequest, {"title": "t", "model_override": "m",
                                             "max_runtime_seconds": 60}, names=names)
    assert (made.model, made.max_runtime) == ("m", 60)
    with pytest.raises(UsageError, match="unknown field 'model'"):
        request_from_json(CreateRequest, {"title": "t", "model": "m"}, names=names)
    shown = json_schema(EventsRequest, defaults={"task_id": 7})["properties"]["task_id"]
    assert shown["default"] == 7
    assert request_from_json(EventsRequest, {}, defaults={"task_id": 7}).task_id == 7

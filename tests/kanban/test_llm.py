"""The auxiliary LLM client through the real openai SDK against a loopback fake server."""

from __future__ import annotations

import asyncio
import time

import pytest

from kanban.agents.llm import (
    AuxiliaryClient,
    LLMEndpoint,
)
from kanban.errors import (
    KanbanError,
    LLMTimeout,
    LLMUnavailable,
    NotConfigured,
    not_configured_message,
)
from tests.fakes.llm_server import LLMServer, threaded_llm_server


def endpoint(server: LLMServer, **kw: object) -> LLMEndpoint:
    values: dict[str, object] = {"slot": "kanban_decomposer", "base_url": server.base_url,
                                 "model": "tiny-model", "timeout": 5.0, "retries": 0}
    values.update(kw)
    return LLMEndpoint(**values)  # type: ignore[arg-type]


async def test_reply_is_returned_and_request_carries_model_messages_and_key(
    llm: LLMServer,
) -> None:
    llm.reply("hello there")
    client = AuxiliaryClient(endpoint(llm, api_key="sk-secret"))
    out = await client.complete([{"role": "system", "content": "be brief"},
                                 {"role": "user", "content": "say hi"}])
    assert out.text == "hello there"
    assert out.model == "tiny-model"
    [req] = llm.completions()
    assert req.params["model"] == "tiny-model"
    assert req.params["messages"] == [{"role": "system", "content": "be brief"},
                                      {"role": "user", "content": "say hi"}]
    assert req.params["_authorization"] == "Bearer sk-secret"


async def test_missing_key_uses_placeholder_for_local_servers(llm: LLMServer) -> None:
    llm.reply("ok")
    await AuxiliaryClient(endpoint(llm, api_key=None)).complete([{"role": "user", "content": "x"}])
    assert llm.completions()[0].params["_authorization"] == "Bearer not-needed"


async def test_server_error_then_success_is_retried(llm: LLMServer) -> None:
    llm.fail(500, "overloaded")
    llm.reply("second time lucky")
    out = await AuxiliaryClient(endpoint(llm, retries=2)).complete(
        [{"role": "user", "content": "x"}])
    assert out.text == "second time lucky"
    assert len(llm.completions()) == 2


async def test_persistent_error_becomes_unavailable_with_status(llm: LLMServer) -> None:
    llm.fail(503, "down for maintenance", times=3)
    with pytest.raises(LLMUnavailable) as info:
        await AuxiliaryClient(endpoint(llm, retries=1)).complete(
            [{"role": "user", "content": "x"}])
    assert info.value.status == 503
    assert "HTTP 503" in str(info.value)
    assert isinstance(info.value, KanbanError)
    assert len(llm.completions()) == 2  # one try + one retry


async def test_client_error_is_not_retried(llm: LLMServer) -> None:
    llm.fail(401, "bad key")
    llm.reply("never served")
    with pytest.raises(LLMUnavailable) as info:
        await AuxiliaryClient(endpoint(llm, retries=3)).complete(
            [{"role": "user", "content": "x"}])
    assert info.value.status == 401
    assert len(llm.completions()) == 1


async def test_slow_reply_times_out(llm: LLMServer) -> None:
    llm.slow("too late")
    started = time.monotonic()
    with pytest.raises(LLMTimeout) as info:
        await AuxiliaryClient(endpoint(llm, timeout=0.3)).complete(
            [{"role": "user", "content": "x"}])
    assert time.monotonic() - started < 5
    assert info.value.seconds == 0.3
    assert "did not answer within 0.3s" in str(info.value)


async def test_empty_reply_is_an_error(llm: LLMServer) -> None:
    llm.reply("   ")
    with pytest.raises(LLMUnavailable, match="empty"):
        await AuxiliaryClient(endpoint(llm)).complete([{"role": "user", "content": "x"}])


async def test_unreachable_server_is_unavailable() -> None:
    server = LLMServer()
    await server.start()
    url = server.base_url
    await server.stop()  # nothing listens on the port any more
    ep = LLMEndpoint(slot="profile_describer", base_url=url, model="m", timeout=2, retries=0)
    with pytest.raises(LLMUnavailable, match="cannot reach"):
        await AuxiliaryClient(ep).complete([{"role": "user", "content": "x"}])


def test_unconfigured_slot() -> None:
    ep = LLMEndpoint(slot="profile_describer", base_url=None, model="m")
    assert not ep.configured
    assert AuxiliaryClient.for_endpoint(ep) is None
    with pytest.raises(NotConfigured) as info:
        AuxiliaryClient(ep)
    assert str(info.value) == "no auxiliary client configured for profile_describer"
    assert not_configured_message("kanban_decomposer") == (
        "no auxiliary client configured for kanban_decomposer")
    assert not LLMEndpoint(slot="x", base_url="http://h", model=None).configured


async def test_concurrent_calls_are_independent(llm: LLMServer) -> None:
    llm.default = "same"
    client = AuxiliaryClient(endpoint(llm))
    outs = await asyncio.wait_for(asyncio.gather(*(
        client.complete([{"role": "user", "content": str(i)}]) for i in range(5))), 10)
    assert [o.text for o in outs] == ["same"] * 5
    assert sorted(r.params["messages"][0]["content"] for r in llm.completions()) == list("01234")


def test_threaded_server_serves_sync_callers() -> None:
    with threaded_llm_server() as server:
        server.reply("from a thread")
        ep = LLMEndpoint(slot="s", base_url=server.base_url, model="m", timeout=5, retries=0)
        out = asyncio.run(AuxiliaryClient(ep).complete([{"role": "user", "content": "x"}]))
        assert out.text == "from a thread"
        assert len(server.completions()) == 1

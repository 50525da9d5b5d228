"""The parts of the adapter contract every adapter shares: status, allowed users, numbering."""

from __future__ import annotations

import asyncio
import logging

import pytest

from platforms.base import AdapterState, AdapterStatus, AllowedUsers, Destination, InboundMessage
from platforms.errors import AdapterConfigError, AuthError, ProtocolError
from platforms.fake import FakeAdapter
from platforms.redact import redact
from platforms.registry import create_adapter


def test_allowed_users_parse() -> None:
    nobody = AllowedUsers.parse("x", [])
    assert not nobody.allows("1") and not nobody.everyone
    some = AllowedUsers.parse("x", ["1", " 2 "])
    assert some.allows("1") and some.allows("2") and not some.allows("3")
    everyone = AllowedUsers.parse("x", ["*"])
    assert everyone.everyone and everyone.allows("anyone")
    for bad in (None, "42", b"42", ["1", " "]):
        with pytest.raises(AdapterConfigError, match="allowed_users"):
            AllowedUsers.parse("x", bad)  # type: ignore[arg-type]


async def test_allowed_users_required_by_the_registry_and_never_everyone_by_default() -> None:
    inbox: asyncio.Queue[InboundMessage] = asyncio.Queue()
    quiet = FakeAdapter()  # a fake for sends only: serves nobody
    await quiet.start(inbox)
    await quiet.inject(chat="c", text="hi", user_id="u1")
    # Delivered so the router can refuse politely, but never authorized.
    assert inbox.get_nowait().authorized is False
    with pytest.raises(TypeError):
        create_adapter("fake")  # type: ignore[call-arg]
    with pytest.raises(AdapterConfigError, match="allowed_users"):
        create_adapter("fake", allowed_users=None)  # type: ignore[arg-type]


async def test_fake_status_follows_its_lifecycle_and_can_be_set(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = FakeAdapter(allowed_users=["*"], platform="slack")
    assert fake.status() == AdapterStatus(AdapterState.STOPPED, "not started")
    await fake.start(asyncio.Queue())
    connected = fake.status()
    assert connected.state is AdapterState.CONNECTED and connected.since is not None
    fake.set_status(AdapterState.CONFLICT, "another poller holds the token")
    assert fake.status().state is AdapterState.CONFLICT
    assert fake.status().detail == "another poller holds the token"
    await fake.close()
    assert fake.status().state is AdapterState.STOPPED
    assert 'slack: allowed_users is ["*"]' in caplog.text


def test_status_since_is_kept_while_the_state_lasts() -> None:
    fake = FakeAdapter(allowed_users=[])
    fake.set_status(AdapterState.RETRYING, "first failure")
    since = fake.status().since
    fake.set_status(AdapterState.RETRYING, "second failure")
    assert fake.status().since == since and fake.status().detail == "second failure"


async def test_fake_numbers_parts_outside_threads_only() -> None:
    fake = FakeAdapter(allowed_users=[], text_length=30)
    text = "one two three four five six seven eight nine ten eleven"
    await fake.send(Destination("fake", "c1"), text)
    await fake.send(Destination("fake", "c1", thread="t"), text)
    channel, thread = fake.calls
    assert [c[:6] for c in channel.chunks] == ["(1/3) ", "(2/3) ", "(3/3) "]
    assert not any(c.startswith("(") for c in thread.chunks)
    assert all(len(c) <= 30 for c in channel.chunks + thread.chunks)


async def test_fake_serves_only_allowed_users() -> None:
    inbox: asyncio.Queue[InboundMessage] = asyncio.Queue()
    nobody = FakeAdapter(allowed_users=[])
    await nobody.start(inbox)
    await nobody.inject(chat="c", text="hi", user_id="u1")
    assert inbox.get_nowait().authorized is False
    everyone = FakeAdapter(allowed_users=["*"])
    await everyone.start(inbox)
    await everyone.inject(chat="c", text="hi", user_id="u1")
    msg = await asyncio.wait_for(inbox.get(), 1)
    assert (msg.user_id, msg.authorized) == ("u1", True)


def test_start_failed_maps_unknown_errors_and_masks_secrets() -> None:
    fake = FakeAdapter(allowed_users=[])
    fake._secrets = ("sekret-token-123",)
    unknown = fake.start_failed(KeyError("id"), lambda exc: None)
    assert isinstance(unknown, ProtocolError)
    assert "unexpected KeyError" in str(unknown) and "base_url" in str(unknown)
    assert fake.status().state is AdapterState.STOPPED
    leaky = ValueError("The token `sekret-token-123` was rejected")
    mapped = fake.start_failed(leaky, lambda exc: AuthError(str(exc)))
    assert str(mapped) == "The token `***` was rejected"
    assert "sekret" not in fake.status().detail
    assert fake.chain_for(leaky) is None
    assert fake.chain_for(KeyError("id")) is not None


def test_redact_masks_longest_first_and_ignores_short_strings() -> None:
    assert redact("a abcdefgh abcdefghij", ["abcdefgh", "abcdefghij", "a"]) == "a *** ***"


def test_secret_filter_masks_sdk_records(caplog: pytest.LogCaptureFixture) -> None:
    from platforms.redact import protect_loggers

    protect_loggers(["s3cr3t-value"], ["tests.sdk"])
    logging.getLogger("tests.sdk").info("url https://x/bot%s/getMe", "s3cr3t-value")
    try:
        raise RuntimeError("boom s3cr3t-value")
    except RuntimeError:
        logging.getLogger("tests.sdk").exception("failed")
    assert "s3cr3t-value" not in caplog.text
    assert "url https://x/bot***/getMe" in caplog.text

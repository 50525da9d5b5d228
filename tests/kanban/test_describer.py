"""The profile describer against the loopback chat-completions fake."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kanban.agents.describer import describe_profiles, parse_description, skill_sample
from kanban.agents.llm import LLMEndpoint
from kanban.agents.profiles import Profiles
from tests.fakes.llm_server import LLMServer


@pytest.fixture
def profiles(tmp_path: Path) -> Profiles:
    p = Profiles(tmp_path)
    made = p.create("charts", model="qwen-7b")
    (made.skills_dir / "matplotlib").mkdir()
    (made.skills_dir / "matplotlib" / "SKILL.md").write_text(
        "---\nname: matplotlib\ndescription: Draw PNG charts from CSV data\n---\n# Body\n")
    (made.skills_dir / "pandas").mkdir()
    (made.skills_dir / "pandas" / "SKILL.md").write_text("\n# Pandas\nClean tabular data.\n")
    (made.skills_dir / "bare").mkdir()
    return p


def endpoint(llm: LLMServer) -> LLMEndpoint:
    return LLMEndpoint(slot="profile_describer", base_url=llm.base_url, model="describer",
                       timeout=5, retries=0)


async def test_auto_sends_name_model_skills_and_stores_auto_description(
    llm: LLMServer, profiles: Profiles,
) -> None:
    llm.reply('{"description": "Turns CSV data into PNG charts. Good at tabular cleanup. '
              'A third sentence is dropped."}')
    [out] = await describe_profiles(profiles, ["charts"], text=None, endpoint=endpoint(llm))
    assert out.action == "described" and out.auto
    assert out.description == "Turns CSV data into PNG charts. Good at tabular cleanup."
    prompt = llm.prompt()
    assert "Agent name: charts" in prompt and "Model: qwen-7b" in prompt
    assert "- matplotlib: Draw PNG charts from CSV data" in prompt
    assert "- pandas: Pandas" in prompt and "- bare" in prompt
    data = yaml.safe_load((profiles.root / "charts" / "profile.yaml").read_text())
    assert data["description"] == out.description and data["description_auto"] is True
    assert data["model"] == "qwen-7b"  # other fields untouched


async def test_prose_reply_falls_back_to_first_paragraph(llm: LLMServer,
                                                         profiles: Profiles) -> None:
    llm.reply("**Charts agent** builds PNG charts from data.\n\nIt also does other things.")
    [out] = await describe_profiles(profiles, ["charts"], text=None, endpoint=endpoint(llm))
    assert out.description == "Charts agent builds PNG charts from data."


async def test_user_description_is_kept_unless_overwrite(llm: LLMServer,
                                                         profiles: Profiles) -> None:
    [set_out] = await describe_profiles(profiles, ["charts"], text="Mine, hand written.",
                                        endpoint=endpoint(llm))
    assert set_out.action == "set" and not profiles.load("charts").description_auto
    llm.reply('{"description": "Generated."}')
    [kept] = await describe_profiles(profiles, ["charts"], text=None, endpoint=endpoint(llm))
    assert kept.action == "skipped" and "--overwrite" in str(kept.reason)
    assert llm.completions() == []  # not even asked
    assert profiles.load("charts").description == "Mine, hand written."
    [over] = await describe_profiles(profiles, ["charts"], text=None, endpoint=endpoint(llm),
                                     overwrite=True)
    assert over.action == "described"
    p = profiles.load("charts")
    assert (p.description, p.description_auto) == ("Generated.", True)


async def test_auto_description_is_regenerated_without_overwrite(llm: LLMServer,
                                                                 profiles: Profiles) -> None:
    profiles.update("charts", description="Old auto.", description_auto=True)
    llm.reply('{"description": "New auto."}')
    [out] = await describe_profiles(profiles, ["charts"], text=None, endpoint=endpoint(llm))
    assert out.action == "described" and profiles.load("charts").description == "New auto."


async def test_unconfigured_and_failing_llm_change_nothing(llm: LLMServer,
                                                           profiles: Profiles) -> None:
    none = LLMEndpoint(slot="profile_describer")
    [out] = await describe_profiles(profiles, ["charts"], text=None, endpoint=none)
    assert (out.action, out.reason) == ("failed",
                                        "no auxiliary client configured for profile_describer")
    llm.fail(500, "boom")
    [out] = await describe_profiles(profiles, ["charts"], text=None, endpoint=endpoint(llm))
    assert out.action == "failed" and "HTTP 500" in str(out.reason)
    llm.reply('{"unexpected": 1}')
    [out] = await describe_profiles(profiles, ["charts"], text=None, endpoint=endpoint(llm))
    assert out.action == "failed" and "no usable description" in str(out.reason)
    assert profiles.load("charts").description == ""


def test_parse_description_variants() -> None:
    assert parse_description('```json\n{"description": "A. B. C."}\n```') == "A. B."
    assert parse_description("Sure! {\"description\": \"Does X.\"} ok") == "Does X."
    assert parse_description("# Heading\n\nsecond") == "Heading"
    assert parse_description("   ") == ""
    assert len(parse_description("x" * 1000)) == 400


def test_skill_sample_is_bounded(tmp_path: Path) -> None:
    p = Profiles(tmp_path).create("many")
    for i in range(20):
        (p.skills_dir / f"s{i:02d}").mkdir()
    sample = skill_sample(p)
    assert len(sample) == 12 and sample[0] == "s00"

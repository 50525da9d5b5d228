"""Profiles: reading never raises, writing is atomic and touches only the given fields."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kanban.agents.profiles import Profiles
from kanban.errors import InvalidInput, ProfileNotFound


@pytest.fixture
def profiles(tmp_path: Path) -> Profiles:
    return Profiles(tmp_path)


def test_create_writes_given_fields_and_skills_dir(profiles: Profiles) -> None:
    p = profiles.create("coder", description="Writes Python.", model="m1",
                        command="my-agent --task {task_id} 'two words'")
    assert p.exists and p.problem is None
    assert p.description == "Writes Python."
    assert p.command == ["my-agent", "--task", "{task_id}", "two words"]
    assert (profiles.root / "coder" / "skills").is_dir()
    on_disk = yaml.safe_load((profiles.root / "coder" / "profile.yaml").read_text())
    assert on_disk == {"description": "Writes Python.", "model": "m1",
                       "command": ["my-agent", "--task", "{task_id}", "two words"]}


def test_create_twice_is_refused(profiles: Profiles) -> None:
    profiles.create("a")
    with pytest.raises(InvalidInput, match="already exists"):
        profiles.create("a")


def test_bad_field_leaves_no_half_made_profile(profiles: Profiles) -> None:
    with pytest.raises(InvalidInput):
        profiles.create("bad", command="unterminated 'quote")
    with pytest.raises(InvalidInput, match="unknown profile field"):
        profiles.create("bad", colour="blue")
    assert profiles.names() == []


def test_update_changes_only_given_fields_and_keeps_unknown_keys(profiles: Profiles) -> None:
    profiles.create("w", description="d", model="m")
    file = profiles.root / "w" / "profile.yaml"
    data = yaml.safe_load(file.read_text())
    data["custom_key"] = {"kept": True}
    file.write_text(yaml.safe_dump(data))
    p = profiles.update("w", model="m2")
    assert (p.description, p.model) == ("d", "m2")
    assert yaml.safe_load(file.read_text())["custom_key"] == {"kept": True}
    p = profiles.update("w", model=None)  # None removes the key
    assert p.model is None
    assert "model" not in yaml.safe_load(file.read_text())
    assert [f.name for f in file.parent.iterdir() if f.name.endswith(".tmp")] == []


def test_update_unknown_profile(profiles: Profiles) -> None:
    with pytest.raises(ProfileNotFound):
        profiles.update("ghost", description="x")


@pytest.mark.parametrize("content, problem", [
    (b"description: [unclosed", "unreadable profile.yaml"),
    (b"- just\n- a list\n", "not a mapping"),
    (b"\xff\xfe\x00garbage", "unreadable profile.yaml"),
    (b"description: {a: 1}\nskills: nope\nenv: 3\n", "description is not a string"),
])
def test_corrupt_file_is_reported_not_raised(profiles: Profiles, content: bytes,
                                             problem: str) -> None:
    home = profiles.root / "broken"
    home.mkdir(parents=True)
    (home / "profile.yaml").write_bytes(content)
    p = profiles.load("broken")
    assert p.exists
    assert p.problem is not None and problem in p.problem
    assert p.description == ""
    assert [x.name for x in profiles.list()] == ["broken"]


def test_missing_and_invalid_profiles_load_without_raising(profiles: Profiles) -> None:
    ghost = profiles.load("ghost")
    assert not ghost.exists and ghost.problem == "profile directory does not exist"
    weird = profiles.load("../etc")
    assert not weird.exists and weird.problem is not None and "invalid" in weird.problem
    (profiles.root / "has space").mkdir(parents=True)
    (profiles.root / ".hidden").mkdir()
    assert profiles.names() == []


def test_description_auto_string_false_is_false(profiles: Profiles) -> None:
    home = profiles.root / "hand"
    home.mkdir(parents=True)
    (home / "profile.yaml").write_text('description: x\ndescription_auto: "false"\n')
    assert profiles.load("hand").description_auto is False


def test_default_name_rule(profiles: Profiles) -> None:
    assert profiles.default_name() == "default"  # no profiles at all: the literal
    profiles.create("zeta")
    profiles.create("alpha")
    assert profiles.default_name() == "alpha"  # first alphabetically
    profiles.create("default")
    assert profiles.default_name() == "default"  # a profile named default wins


def test_skills_and_has_skill(profiles: Profiles) -> None:
    p = profiles.create("s")
    (p.skills_dir / "kanban-worker").mkdir()
    (p.skills_dir / "charts").mkdir()
    p = profiles.load("s")
    assert p.has_skill("kanban-worker") and not p.has_skill("nope")
    assert p.installed_skills() == ["charts", "kanban-worker"]
    assert p.to_dict()["skills"] == ["charts", "kanban-worker"]

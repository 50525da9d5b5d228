"""The operator's decisions on pairing requests, shared by ``relayboard pairing`` and the
dashboard: approving one adds the user id to ``platforms.<name>.allowed_users`` (or ``admins``)
in config.yaml, rewritten round-trip with its comments kept (see :mod:`gateway.config_edit`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from gateway.chat.pairing import PairingStore, Pending, UnknownCode, normalize
from gateway.config_edit import edit_config, section
from gateway.errors import ConfigError


@dataclass(frozen=True)
class Approval:
    request: Pending
    role: str  # member or admin
    config_key: str  # platforms.<name>.allowed_users or .admins
    config_file: Path
    added: bool  # False: the id was listed already

    def to_dict(self, now: float) -> dict[str, Any]:
        return {"approved": self.request.to_dict(now), "role": self.role,
                "config_key": self.config_key, "config_file": str(self.config_file),
                "added": self.added}

    def line(self) -> str:
        r = self.request
        who = f"{r.user_id} ({r.user_name})" if r.user_name else r.user_id
        return (f"approved {r.platform} user {who} as {self.role}: "
                + (f"added to {self.config_key} in {self.config_file.name}" if self.added
                   else f"already in {self.config_key}")
                + "; the running gateway serves them from their next message")


def approve(store: PairingStore, config_file: Path, code: str, *, admin: bool = False) -> Approval:
    """Write the user into config.yaml, then close the request (a config that cannot be written
    leaves the request waiting)."""
    wanted = normalize(code)
    item = next((p for p in store.pending() if p.code == wanted), None)
    if item is None:
        raise UnknownCode(f"no pending pairing request with code {wanted or '(empty)'} (it may "
                          "have expired; `relayboard pairing list` shows those waiting)")
    key = "admins" if admin else "allowed_users"
    added = _add_user(config_file, item.platform, key, item.user_id)
    store.approve(wanted, admin=admin)
    return Approval(item, "admin" if admin else "member", f"platforms.{item.platform}.{key}",
                    config_file, added)


def _add_user(path: Path, platform: str, key: str, user_id: str) -> bool:
    added = False

    def change(data: CommentedMap) -> None:
        nonlocal added
        block = section(section(data, "platforms", path), platform, path, "platforms.")
        users = block.get(key)
        if users is None:
            users = block[key] = CommentedSeq()
        elif not isinstance(users, list):
            raise ConfigError(f"{path.name}: platforms.{platform}.{key} must be a list")
        if user_id in {str(u) for u in users} or (key == "allowed_users" and "*" in users):
            return
        users.append(user_id)
        added = True

    edit_config(path, change)
    return added

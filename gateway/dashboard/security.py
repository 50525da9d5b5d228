"""Who may talk to the dashboard: a bearer token off loopback, and same-origin writes.

* Bound to a loopback address with no token configured, the dashboard serves the local user.
* Bound anywhere else it refuses to start without a token (:func:`check_bind`); with a token every
  request must carry it — ``Authorization: Bearer …`` for scripts, or the ``relayboard_token``
  cookie a browser gets by opening ``/?token=…`` once (an EventSource cannot send headers). The
  comparison is constant-time.
* Without a token, only a loopback ``Host`` is answered (127.0.0.1, localhost, [::1]), so a
  foreign page cannot reach it by pointing its own name at 127.0.0.1 (DNS rebinding).
* The health probes (``/healthz``, ``/readyz``: ``open_paths``) answer GET and HEAD without the
  token, so an orchestrator can probe a public dashboard; they reveal only ok / not-ready
  reasons. The loopback ``Host`` rule still applies when there is no token.
* Paths under ``own_auth_prefix`` (the gateway's ``/webhooks/``) carry their own authentication,
  checked by the adapter that receives them (Telegram's secret token, Slack's signature): a
  platform sends neither the dashboard's token nor a loopback ``Host``, so those two rules are
  not applied there; the origin and worker rules still are.
* Every mutating request (anything but GET/HEAD/OPTIONS) whose ``Origin`` is present must come from
  the dashboard's own origin, so another page open in the same browser cannot post to it (CSRF).
  Requests without ``Origin`` are not from a browser page and are judged by the token alone.
* A mutating request over loopback from a worker's process, or from any process a gateway or a
  dispatcher started (:func:`gateway.identity.started_by_relayboard`), is refused: "this
  machine" means its operator, not the code a model chose. The process is found from the
  connection itself, not from anything the request says.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import re
from http.cookies import CookieError, SimpleCookie
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlencode, urlsplit

import anyio.to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import ConfigError
from gateway.identity import lineage, peer_pid, started_by_relayboard, worker_of_lineage

if TYPE_CHECKING:
    from kanban import Boards

COOKIE = "relayboard_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SEGMENT = re.compile(r"[a-z0-9_-]{1,32}")


def is_loopback(host: str) -> bool:
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None, token_env: str | None) -> None:
    """Refuse to serve a non-loopback address without a bearer token."""
    if is_loopback(host) or token:
        return
    if token_env:
        raise ConfigError(f"dashboard.host is {host}, but ${token_env} (dashboard.token_env) "
                          "is empty; set it, or bind 127.0.0.1")
    raise ConfigError(f"dashboard.host is {host}: serving beyond this machine needs a bearer "
                      "token; set dashboard.token_env to a variable holding one (or "
                      "dashboard.token_file to a file)")


class Guard:
    """ASGI middleware applying the rules of this module to every HTTP request."""

    def __init__(self, app: ASGIApp, *, token: str | None, boards: Boards | None = None,
                 open_paths: frozenset[str] = frozenset(),
                 own_auth_prefix: str | None = None) -> None:
        self.app = app
        self.open_paths = open_paths
        self.own_auth_prefix = own_auth_prefix
        self.token = token.encode() if token else None
        self.boards = boards  # the runs whose recorded workers a local peer may be

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        method = str(scope.get("method", "GET")).upper()
        own_auth = self._own_auth(str(scope.get("path", "")))
        if own_auth:
            pass  # the receiving adapter authenticates it (see the module docstring)
        elif self.token is None and not _loopback_host(headers.get("host")):
            # Without a token the dashboard trusts "this machine". A page elsewhere can point its
            # own host name at 127.0.0.1 (DNS rebinding) and then look same-origin; refusing
            # any Host that is not a loopback name closes that door.
            await _plain(send, 421, "this dashboard answers only to a loopback host name "
                         "(127.0.0.1, localhost, [::1]); set dashboard.token_env to serve others")
            return
        probe = method in ("GET", "HEAD") and scope.get("path") in self.open_paths
        if self.token is not None and not probe and not own_auth:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            offered = query.get("token", [None])[0]
            if offered and method == "GET" and self._matches(offered):
                await _set_cookie_and_redirect(scope, send, offered, query)
                return
            if not self._authorised(headers):
                await _plain(send, 401, "a valid dashboard token is required",
                             {"www-authenticate": "Bearer"})
                return
        if method not in SAFE_METHODS and not _same_origin(headers, scope):
            await _plain(send, 403, "cross-origin request refused")
            return
        if method not in SAFE_METHODS and await from_a_worker(scope, self.boards):
            await _plain(send, 403, "refused: this request comes from a worker's process (or one "
                         "the gateway started); a worker reports on its own task with its lease")
            return
        await self.app(scope, receive, send)

    def _own_auth(self, path: str) -> bool:
        """True for exactly ``<own_auth_prefix><name>``: one plain segment, nothing below it."""
        prefix = self.own_auth_prefix
        return (prefix is not None and path.startswith(prefix)
                and _SEGMENT.fullmatch(path[len(prefix):]) is not None)

    def _matches(self, offered: str) -> bool:
        assert self.token is not None
        return hmac.compare_digest(offered.encode(), self.token)

    def _authorised(self, headers: dict[str, str]) -> bool:
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer " and self._matches(auth[7:].strip()):
            return True
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except CookieError:  # a malformed Cookie header is simply no cookie
            return False
        morsel = cookie.get(COOKIE)
        return morsel is not None and self._matches(morsel.value)


async def from_a_worker(scope: Scope, boards: Boards | None) -> bool:
    """Whether a loopback request comes from a worker's process, or one a gateway or a
    dispatcher started (the inbound hooks ask this too)."""
    client, server = scope.get("client"), scope.get("server")
    if not client or not server or not is_loopback(str(client[0])):
        return False

    def look() -> tuple[int | None, frozenset[int], bool]:
        pid = peer_pid((str(client[0]), int(client[1])), int(server[1]))
        if pid is None:
            return None, frozenset(), False
        return pid, lineage(pid)[0], started_by_relayboard(pid)

    pid, ids, flagged = await anyio.to_thread.run_sync(look)
    if pid is None or flagged:
        return flagged
    # Neither its variables nor a gateway above it: it may still be a worker the dispatcher
    # recorded (one whose parent is gone and that replaced its environment).
    return boards is not None and await worker_of_lineage(boards, ids) is not None


def _loopback_host(host: str | None) -> bool:
    """True for a Host header naming a loopback address (any port), or no Host at all."""
    if not host:
        return True  # HTTP/1.0 clients; the socket itself is bound to loopback
    name = urlsplit(f"//{host}").hostname or ""
    return is_loopback(name)


def _same_origin(headers: dict[str, str], scope: Scope) -> bool:
    if headers.get("sec-fetch-site") == "cross-site":
        return False
    origin = headers.get("origin")
    if origin is None:
        return True
    if origin == "null":
        return False
    host = headers.get("host")
    if host is None:
        server = scope.get("server")
        host = f"{server[0]}:{server[1]}" if server else ""
    return urlsplit(origin).netloc.lower() == host.lower()


async def _plain(send: Send, status: int, message: str,
                 extra: dict[str, str] | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    start: Message = {"type": "http.response.start", "status": status, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": body})


async def _set_cookie_and_redirect(scope: Scope, send: Send, token: str,
                                   query: dict[str, list[str]]) -> None:
    rest = {k: v for k, v in query.items() if k != "token"}
    location = str(scope.get("path") or "/") + (f"?{urlencode(rest, doseq=True)}" if rest else "")
    cookie = f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", location.encode()), (b"set-cookie", cookie.encode()),
                            (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})

"""The web dashboard: REST API, live event stream, the board page and the web chat mount.

Modules: ``app`` (``create_app``), ``api`` (routes), ``views`` (read models), ``actions`` (every
write, as the ``dashboard`` operator), ``live`` (one shared event-log tail per board),
``orchestration`` (config.yaml round-trip), ``security`` (token and Origin checks), ``openapi``.
"""

from gateway.dashboard.app import close_streams, create_app

__all__ = ["close_streams", "create_app"]

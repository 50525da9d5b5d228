"""Inbound webhooks: ``POST /hooks/NAME`` creates a task from a configured template.

Each hook (``hooks.<name>`` in config.yaml) carries its own token, checked in constant time from
a header, and acts through the command layer as its own caller (:class:`~gateway.commands.
callers.Webhook`): it may create tasks on its board and subscribe the threads its config names,
nothing else. See docs/hooks.md.

* :mod:`gateway.hooks.template` fills ``{json.PATH}`` fields from the request body;
* :mod:`gateway.hooks.limits` is the per-hook token bucket;
* :mod:`gateway.hooks.endpoint` is the ASGI front that answers ``/hooks/…`` before the
  dashboard's access rules see the request.
"""

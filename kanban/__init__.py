"""The board kernel: storage, state machine, graph, dispatcher, decomposer, profiles.

Layering: this package imports only the standard library, aiosqlite, pyyaml, anyio and the LLM
client library. It never imports ``gateway`` or ``platforms``.
"""

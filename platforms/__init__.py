"""Chat platform adapters: one small contract (``platforms.base``) and one module per platform.

Layering: this package imports only the standard library and the platform SDKs. It never imports
``kanban`` or ``gateway``.
"""

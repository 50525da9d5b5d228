"""Chat platform adapters: one small contract (``platforms.base``) and one module per platform.

Modules: ``base`` (Destination, InboundMessage, Receipt, Limits, PlatformAdapter), ``errors`` (the
exception tree), ``files`` (path extraction and the file-kind table), ``delivery`` (what may leave
the host, and ``deliver_files``), ``registry`` (adapters by name), ``telegram``, ``slack``,
``discord``, ``fake``. Import them as ``platforms.<name>``; never put this directory on sys.path.

Layering: this package imports only the standard library and the platform SDKs. It never imports
``kanban`` or ``gateway``.
"""

"""``python -m gateway`` runs the same CLI as the ``relayboard`` console script."""

from __future__ import annotations

from gateway.entry import main

if __name__ == "__main__":
    main()

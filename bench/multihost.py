"""The multi-host simulation at full size: two gateways and three dispatchers (separate processes
and home folders, each under its own host name where ``unshare --uts`` is allowed) on one
PostgreSQL board of 2,000 tasks in a DAG, 200 of them subscribed to a loopback Telegram, one
dispatcher and one gateway killed with SIGKILL on the way. Prints figures and the audit (every
task done once, the parent gate, notifications per chat); asserts nothing.

    RELAYBOARD_TEST_PG_DSN=postgresql://… python bench/multihost.py [--tasks 2000]
        [--subscribed 200] [--width 100] [--max-spawn 8] [--seed N] [--shared-host]

The same harness (tests/multihost_harness.py) runs a smaller board in
tests/gateway/test_multihost.py. Each task costs one ``relayboard kanban complete`` process
(interpreter start, imports, a board opened on PostgreSQL): that, not the board, bounds the rate.
The board lives in a fresh namespace, dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.multihost_harness import SimSpec, simulate  # noqa: E402

DSN_ENV = "RELAYBOARD_TEST_PG_DSN"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--subscribed", type=int, default=200)
    parser.add_argument("--width", type=int, default=100, help="tasks per DAG layer")
    parser.add_argument("--max-spawn", type=int, default=8, help="the board's live cap")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--shared-host", action="store_true",
                        help="one host name for every process (no unshare)")
    parser.add_argument("--within", type=float, default=1800.0, help="give up after SECONDS")
    args = parser.parse_args()
    dsn = os.environ.get(DSN_ENV, "")
    if not dsn:
        print(f"error: set {DSN_ENV} to a PostgreSQL DSN", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    spec = SimSpec(tasks=args.tasks, subscribed=min(args.subscribed, args.tasks),
                   layer_width=args.width, max_spawn=args.max_spawn, seed=seed,
                   within=args.within)
    with tempfile.TemporaryDirectory(prefix="relayboard-multihost-") as tmp:
        report = asyncio.run(simulate(spec, Path(tmp), dsn,
                                      separate_hosts=False if args.shared_host else None))
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A scriptable worker: ``agent.py ACTION [ARG…] [-- EXTRA…]``, run by the dispatcher as a profile
command.

It first records what it was given (argv, cwd, the RELAYBOARD_* environment, and the whole
environment as ``all_env``) as JSON in
``$AGENT_RECORD_DIR/<task>-<run>.json`` when that variable is set, then acts:

* ``complete [RESULT]``     complete its own task through the worker API with its lease
* ``artifact NAME TEXT``    write NAME in the workspace, then complete declaring it (relative path)
* ``exit CODE [MESSAGE]``   print MESSAGE, exit with CODE (no completion)
* ``sleep SECONDS [complete]``  sleep, then exit 0 or complete
* ``block REASON``          block its own task
* ``wait-file PATH``        wait (bounded) for PATH to exist, then try to complete; prints
                            ``refused: …`` and exits 3 when the lease is refused
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:  # run as a plain script from any cwd
    sys.path.insert(0, str(ROOT))

from gateway.worker_api.client import ApiError, call  # noqa: E402


def record() -> None:
    target = os.environ.get("AGENT_RECORD_DIR")
    if not target:
        return
    env = {k: v for k, v in os.environ.items() if k.startswith(("RELAYBOARD_", "AGENT_"))}
    data = {"argv": sys.argv, "cwd": os.getcwd(), "env": env, "all_env": dict(os.environ),
            "pid": os.getpid()}
    name = f"{os.environ.get('RELAYBOARD_TASK_ID')}-{os.environ.get('RELAYBOARD_RUN_ID')}.json"
    tmp = Path(target) / (name + ".tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, Path(target) / name)


def finish(kind: str, text: str = "", artifacts: list[str] | None = None) -> None:
    args: dict[str, object] = ({"result": text or "ok", "artifacts": artifacts or []}
                               if kind == "complete" else {"words": [text or "needs a human"]})
    call(Path(os.environ["RELAYBOARD_API"]), kind, args,
         task_id=int(os.environ["RELAYBOARD_TASK_ID"]), lease=os.environ["RELAYBOARD_LEASE"],
         board=os.environ.get("RELAYBOARD_BOARD"))


def main(argv: list[str]) -> int:
    record()
    action, args = argv[0], argv[1:]
    if "--" in args:
        args = args[: args.index("--")]
    if action == "complete":
        finish("complete", args[0] if args else "ok")
        return 0
    if action == "artifact":
        name, text = args[0], args[1]
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        Path(name).write_text(text, encoding="utf-8")
        finish("complete", "made " + name, [name])
        return 0
    if action == "exit":
        if len(args) > 1:
            print(args[1], flush=True)
        return int(args[0])
    if action == "sleep":
        time.sleep(float(args[0]))
        if len(args) > 1 and args[1] == "complete":
            finish("complete", "slept")
        return 0
    if action == "block":
        finish("block", args[0])
        return 0
    if action == "wait-file":
        deadline = time.monotonic() + 60
        while not Path(args[0]).exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        try:
            finish("complete", "late")
        except ApiError as exc:
            print(f"refused: {exc}", flush=True)
            return 3
        return 0
    print(f"unknown action {action!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

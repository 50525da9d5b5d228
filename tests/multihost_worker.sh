#!/bin/sh
# The multi-host simulation's worker (tests/multihost_harness.py): it completes its own task
# through the real CLI (the dispatcher's `relayboard` is first on PATH; RELAYBOARD_* name the
# task, run and lease) and says in the task's metadata which host and process ran it.
host=$(uname -n)
exec relayboard kanban complete --result "ran on $host" \
    --metadata "{\"host\": \"$host\", \"pid\": $$, \"run_id\": ${RELAYBOARD_RUN_ID:-0}}"

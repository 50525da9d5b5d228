"""The process runtime: the dispatcher, worker spawning, workspaces."""

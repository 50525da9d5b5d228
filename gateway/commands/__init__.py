"""The transport-neutral command layer shared by the CLI, the chat router and the dashboard."""

"""`worker report` (filled in by the report job kind)."""

COMMANDS: list[object] = []

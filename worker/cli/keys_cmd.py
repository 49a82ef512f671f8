"""Placeholder until wired."""

COMMANDS: list[object] = []

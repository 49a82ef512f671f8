"""``python -m simulator``: run the provider simulator as its own process.

Prints ``simulator listening on http://HOST:PORT`` once it accepts connections (with ``--port 0``
the line carries the port the system picked) and runs until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import sys

from simulator.config import SimConfig
from simulator.server import serve

DEFAULT_PORT = 8900


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m simulator",
        description="Local simulator of the KIE, OpenAI and Telegram APIs.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any)"
    )
    parser.add_argument("--config", metavar="FILE", help="JSON configuration (may be partial)")
    parser.add_argument(
        "--render-seconds", type=float, metavar="S", help="seconds a KIE task takes to render"
    )
    parser.add_argument("--seed", type=int, help="seed of the fault dice, for reproducible runs")
    return parser.parse_args(argv)


def load_config(args: argparse.Namespace) -> SimConfig:
    """The configuration from ``--config``, with the command-line overrides applied."""
    config = SimConfig.from_json_file(args.config) if args.config else SimConfig()
    patch: dict[str, object] = {}
    if args.render_seconds is not None:
        patch["kie"] = {"render_seconds": args.render_seconds}
    if args.seed is not None:
        patch["seed"] = args.seed
    return config.patched(patch) if patch else config


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = load_config(args)
    except (OSError, ValueError) as exc:
        print(f"simulator: invalid configuration: {exc}", file=sys.stderr)
        return 2
    serve(args.host, args.port, config)
    return 0


if __name__ == "__main__":
    sys.exit(main())

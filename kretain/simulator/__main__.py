"""``python -m kretain.simulator``: run a simulator without the kretain CLI."""

from __future__ import annotations

import argparse

from kretain.simulator.server import simulator_main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kretain.simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--entries", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--db", dest="db_path", default=None, help="partner SQLite file (cache)")
    parser.add_argument("--burst", type=int, default=0)
    parser.add_argument("--no-traps", dest="traps", action="store_false")
    parser.add_argument("--recycle-bin", action="store_true")
    parser.add_argument(
        "--recycle-retention-days", type=int, default=30, help="days before the bin empties"
    )
    parser.add_argument(
        "--max-file-bytes", type=int, default=None, help="cap on every file's size (fast tries)"
    )
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument(
        "--rate-limit",
        dest="rate_limits",
        action="append",
        default=[],
        help="service.action=LIMIT[/SECONDS], repeatable",
    )
    parser.add_argument("--no-rate-limits", action="store_true")
    parser.add_argument("--ks-lifetime", type=int, default=None)
    parser.add_argument("--download-bandwidth", type=float, default=None, help="bytes/s")
    parser.add_argument("--total-bandwidth", type=float, default=None, help="bytes/s")
    parser.add_argument("--ignore-range", action="store_true")
    parser.add_argument(
        "--fault", dest="faults", action="append", default=[], help="NAME=RATE, repeatable"
    )
    parser.add_argument("--fault-seed", type=int, default=0)
    simulator_main(**vars(parser.parse_args(argv)))


if __name__ == "__main__":
    main()

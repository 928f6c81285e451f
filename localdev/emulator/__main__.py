"""Run the emulator: `python -m localdev.emulator --port 8443 --seed 7 --state-dir .local/emulator`.

Prints one line, the URL, once it is listening; writes `ca.pem` (trust it, e.g. with
REQUESTS_CA_BUNDLE) and `emulator.json` (tenant, client id and secret, subscriptions) to the state
directory; stops cleanly on SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from core.clock import SystemClock

from .emulator import DEFAULT_AUDIENCE, Emulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localdev.emulator", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8443, help="port to listen on; 0 picks a free one")
    parser.add_argument("--seed", type=int, default=7, help="seed of the synthetic tenant (default 7)")
    parser.add_argument("--state-dir", type=Path, default=Path(".local/emulator"), help="where ca.pem etc. go")
    parser.add_argument("--events-per-hour", type=float, default=60.0, help="events per hour per subscription")
    parser.add_argument(
        "--max-surface-delay", type=float, default=300.0, help="longest delay, in seconds, before an event surfaces"
    )
    parser.add_argument(
        "--page-latency", type=float, default=0.0, help="seconds each Activity Log page takes (ARM: about 0.5-2)"
    )
    parser.add_argument("--audience", default=DEFAULT_AUDIENCE, help="the audience of minted user tokens")
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    emulator = Emulator(
        clock=SystemClock(),
        seed=args.seed,
        port=args.port,
        state_dir=args.state_dir,
        audience=args.audience,
        events_per_hour=args.events_per_hour,
        max_surface_delay=args.max_surface_delay,
        page_latency=args.page_latency,
    )
    try:
        emulator.start()
    except OSError as error:
        print(f"cannot start the emulator on 127.0.0.1:{args.port}: {error}", file=sys.stderr)
        return 1
    print(emulator.url, flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m localdev.host`: run the app in a folder as the Functions host would, until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from localdev.host.errors import HostStartupError
from localdev.host.host import LocalHost, function_table

logger = logging.getLogger("localdev.host")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m localdev.host",
        description="Run a v2-model Azure Functions app (function_app.py) locally, against Azurite.",
    )
    parser.add_argument("--app-dir", type=Path, default=Path("."), help="folder with function_app.py and host.json")
    parser.add_argument("--port", type=int, default=7071, help="HTTP port on 127.0.0.1 (0 picks a free one)")
    parser.add_argument("--function-key", help="require this key for FUNCTION-level HTTP functions")
    parser.add_argument("--master-key", help="require this key for /admin/* and ADMIN-level functions")
    parser.add_argument(
        "--shutdown-timeout",
        type=float,
        default=30.0,
        help="seconds to let running invocations finish on Ctrl-C/SIGTERM (default 30)",
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    args = parser.parse_args(argv)

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)

    host = LocalHost(args.app_dir, port=args.port, function_key=args.function_key, master_key=args.master_key)
    stop_requested = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if not stop_requested.is_set():
            logger.info(
                "%s received: finishing running invocations (again to abandon them)", signal.Signals(signum).name
            )
            stop_requested.set()
        else:
            logger.warning("Abandoning running invocations; their queue messages become visible again")
            host.abandon()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)

    try:
        host.start()
    except HostStartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    print(function_table(host.functions), flush=True)
    print(f"\nHost running at {host.base_url} (Ctrl-C to stop)", flush=True)
    while not stop_requested.wait(0.5):
        pass
    host.stop(timeout=args.shutdown_timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())

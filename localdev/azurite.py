"""Start and stop Azurite (the npm package pinned in package.json) on loopback ports."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports that are free now (all bound at once, then released)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class AzuriteExited(RuntimeError):
    """Azurite stopped while starting (for instance: a port was taken)."""


@dataclass
class Azurite:
    """A running Azurite: blob, queue and table services on loopback."""

    blob_port: int = 0
    queue_port: int = 0
    table_port: int = 0
    # Where the log goes. The data stay in memory, where Azurite's tables stay fast as they grow (on
    # disk it re-saves the whole table database every few seconds).
    location: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    @property
    def services(self) -> dict[str, int]:
        return {"blob": self.blob_port, "queue": self.queue_port, "table": self.table_port}

    @property
    def connection_string(self) -> str:
        return self.connection_string_via()

    def connection_string_via(self, **ports: int) -> str:
        """The connection string, with the services named in `ports` (queue=, table=) on those ports (a proxy's)."""
        unknown = set(ports) - set(self.services)
        if unknown:
            raise ValueError(f"no Azurite service named {', '.join(sorted(unknown))}")
        endpoints = "".join(
            f"{name.capitalize()}Endpoint=http://127.0.0.1:{port}/{DEV_ACCOUNT};"
            for name, port in {**self.services, **ports}.items()
        )
        return f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};{endpoints}"

    def start(self, timeout: float = 30.0) -> Azurite:
        """Start Azurite and wait until its three services listen.

        Ports left at 0 are picked here; a port taken by another program between the pick and
        Azurite's bind makes Azurite exit, and then the start is retried on fresh ports.
        """
        chosen = (self.blob_port, self.queue_port, self.table_port)
        attempts = 1 if all(chosen) else 3
        for attempt in range(1, attempts + 1):
            picked = iter(free_ports(3))
            self.blob_port, self.queue_port, self.table_port = (port or next(picked) for port in chosen)
            try:
                return self._start_once(timeout)
            except AzuriteExited:
                if attempt == attempts:
                    raise
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float) -> Azurite:
        exe = ROOT / "node_modules" / ".bin" / "azurite"
        if not exe.exists():
            raise RuntimeError("Azurite is not installed: run `npm ci` in the project root")
        if self.location is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="azurite-")
            self.location = Path(self._tmp.name)
        log = (self.location / "azurite.log").open("wb")
        args = [str(exe), "--silent", "--disableTelemetry", "--skipApiVersionCheck", "--loose", "--inMemoryPersistence"]
        for name, port in self.services.items():
            args += [f"--{name}Host", "127.0.0.1", f"--{name}Port", str(port)]
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT))
        deadline = time.monotonic() + timeout
        ports = tuple(self.services.values())
        with log:
            while not all(_port_open(p) for p in ports):
                if self.process.poll() is not None:
                    raise AzuriteExited(f"Azurite exited early; see {self.location / 'azurite.log'}")
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("Azurite did not start in time")
                time.sleep(0.1)
        # A port answering could belong to another program if Azurite failed to bind it.
        time.sleep(0.2)
        if self.process.poll() is not None:
            raise AzuriteExited(f"Azurite exited after start; see {self.location / 'azurite.log'}")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp.name, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

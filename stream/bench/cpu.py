"""CPU time of the processes a benchmark run measures: its workers, the broker, itself.

A process's CPU time (user + system, every thread) comes from ``/proc/<pid>/stat``; the bench's
own process uses ``time.process_time()``. The broker is found from the bootstrap address: the
process holding the listening socket of its port (``/proc/net/tcp*`` gives the socket's inode,
``/proc/*/fd`` the process holding it), which works only for a broker running on this machine
as a process this user can inspect; otherwise :func:`find_broker` says why not.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
_LISTEN = "0A"
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "::"}  # noqa: S104 (names, not binds)

SELF = 0
"""The pid :func:`cpu_seconds` reads as the calling process (``time.process_time()``)."""


def cpu_seconds(pid: int, proc: Path = PROC) -> float | None:
    """User + system CPU seconds used so far by ``pid`` (every thread); ``None`` once it is gone.

    ``pid`` :data:`SELF` is this process.
    """
    if pid == SELF:
        return time.process_time()
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces: split after it
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def listening_inodes(port: int, proc: Path = PROC) -> set[str]:
    """Inodes of the TCP sockets listening on ``port`` (IPv4 and IPv6, any address)."""
    inodes: set[str] = set()
    for name in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) < 10 or cols[3] != _LISTEN:
                continue
            if int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(cols[9])
    return inodes


def pid_holding(inodes: set[str], proc: Path = PROC) -> int | None:
    """The first process with an open file descriptor on one of the sockets ``inodes``."""
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:  # another user's process, or gone
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in wanted:
                    return int(entry.name)
            except OSError:
                continue
    return None


def _is_local(host: str) -> bool:
    if host in _LOCAL_HOSTS:
        return True
    try:
        own = {socket.gethostname(), socket.getfqdn()}
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return host in own or any(a.startswith("127.") or a == "::1" for a in addresses)


@dataclass(frozen=True)
class Broker:
    """The broker's process, or why it is not measured."""

    pid: int | None
    reason: str = ""


def find_broker(bootstrap: str, proc: Path = PROC) -> Broker:
    """The local process listening on the first bootstrap server's port."""
    first = bootstrap.split(",", maxsplit=1)[0].strip()
    first = first.split("://", 1)[-1]
    host, _, port_text = first.rpartition(":")
    host = host.strip("[]")
    if not port_text.isdigit():
        return Broker(None, f"no port in the bootstrap address {bootstrap!r}")
    if not _is_local(host):
        return Broker(None, f"the broker {first} is not on this machine")
    inodes = listening_inodes(int(port_text), proc)
    if not inodes:
        return Broker(None, f"no socket listens on port {port_text} here (a container's port?)")
    pid = pid_holding(inodes, proc)
    if pid is None:
        return Broker(None, f"the process listening on port {port_text} cannot be inspected")
    return Broker(pid)


@dataclass
class CpuMeter:
    """CPU seconds of some workers and the broker between :meth:`start` and :meth:`stop`.

    The workers' pids are read when the meter starts (``workers`` is called then), so a meter
    can be made before its processes exist.
    """

    workers: Callable[[], Sequence[int]]
    broker: int | None
    _pids: list[int] = field(default_factory=list)
    _start: dict[int, float | None] = field(default_factory=dict)
    worker_seconds: float | None = None
    broker_seconds: float | None = None

    def start(self) -> None:
        self._pids = list(self.workers())
        every = [*self._pids, *([self.broker] if self.broker is not None else [])]
        self._start = {pid: cpu_seconds(pid) for pid in every}

    def stop(self) -> None:
        self.worker_seconds = self._used(self._pids)
        if self.broker is not None:
            self.broker_seconds = self._used([self.broker])

    def _used(self, pids: list[int]) -> float | None:
        total = 0.0
        for pid in pids:
            before, after = self._start.get(pid), cpu_seconds(pid)
            if before is None or after is None:
                return None
            total += after - before
        return total

    def row(self, records: int) -> dict[str, float | None]:
        """The figures of a throughput row: CPU seconds and µs per record."""

        def per_record(seconds: float | None) -> float | None:
            return None if seconds is None or records <= 0 else round(1e6 * seconds / records, 1)

        return {
            "worker_cpu_s": None if self.worker_seconds is None else round(self.worker_seconds, 2),
            "worker_cpu_us_per_record": per_record(self.worker_seconds),
            "broker_cpu_s": None if self.broker_seconds is None else round(self.broker_seconds, 2),
            "broker_cpu_us_per_record": per_record(self.broker_seconds),
        }

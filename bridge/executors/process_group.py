"""A run's process group on this machine: what to record of it, how to find what is left of it, how to kill it.

Each run is started in its own session, so its main process leads a process group whose id is its pid, and
everything it starts (unless it leaves with its own `setsid`) stays in that group. The kernel keeps a pid number
allocated while any process still uses it as a group id: while anything of the group lives, that number cannot
name an unrelated process or group. Once the whole group is gone it can, so anything that signals a group later
(after the bridge restarted) first proves the group is the run's:

- a record is only meaningful on the boot it was made on (`/proc/sys/kernel/random/boot_id`), which also rules
  out another host;
- the recorded main process is recognised by its start time, which exec does not change (its environment reads
  empty for a moment while it execs, as `setpriv` turns into the run: that made a check by environment alone
  fail now and then);
- any other member must carry the run's `BRIDGE_RUN_ID` in its environment.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessStat:
    """The fields of `/proc/<pid>/stat` this module reads."""

    state: str  # Z: a zombie, ended but not reaped yet (its environment reads empty, like a process in exec)
    pgid: int
    start_time: int  # clock ticks after boot: with the boot id, a pid number's one process

    @property
    def running(self) -> bool:
        """Not ended: neither a zombie nor dead."""
        return self.state not in {"Z", "X", "x"}


def read_stat(pid: int) -> ProcessStat | None:
    """The process's state, group and start time, or None when there is no such process."""
    try:  # os-level: read at every start, where a Python file object's setup cost more than the read
        fd = os.open(f"{PROC}/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
        try:
            data = os.read(fd, 4096)
        finally:
            os.close(fd)
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count fields after its last ")".
    fields = data[data.rindex(b")") + 2 :].split()
    return ProcessStat(state=fields[0].decode(), pgid=int(fields[2]), start_time=int(fields[19]))


@functools.cache
def boot_id() -> str | None:
    """This boot's random id (None without /proc): a record made on another boot or host names nothing here."""
    try:
        return (PROC / "sys" / "kernel" / "random" / "boot_id").read_text().strip()
    except OSError:
        return None


@dataclass(frozen=True)
class GroupRecord:
    """What the ledger keeps of a started run so that a later bridge on this machine can find its processes."""

    pid: int
    pgid: int
    start_time: int | None = None
    boot_id: str | None = None

    @classmethod
    def of(cls, pid: int) -> GroupRecord:
        """The record of a run just started as its own session leader (`start_new_session`)."""
        stat = read_stat(pid)
        return cls(pid=pid, pgid=pid, start_time=stat.start_time if stat else None, boot_id=boot_id())

    def to_info(self) -> dict[str, Any]:
        """As JSON-ready reattach info (`LedgerEntry.reattach_info`)."""
        return {"pid": self.pid, "pgid": self.pgid, "start_time": self.start_time, "boot_id": self.boot_id}

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> GroupRecord | None:
        """Read dispatch info back; records from before pgid and start time were kept hold only `pid`."""
        pid = info.get("pid")
        if not _is_pid(pid):
            return None
        pgid = info.get("pgid", pid)
        start_time = info.get("start_time")
        boot = info.get("boot_id")
        return cls(
            pid=pid,
            pgid=pgid if _is_pid(pgid) else pid,
            start_time=start_time if isinstance(start_time, int) and not isinstance(start_time, bool) else None,
            boot_id=boot if isinstance(boot, str) else None,
        )


def _is_pid(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value > 1


def carries_run_id(pid: int, run_id: str) -> bool | None:
    """Whether the process's environment names this run; None when it cannot be read or reads empty (no such
    process, a zombie, or a process in the middle of an exec)."""
    try:
        environ = (PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return None
    if not environ:
        return None
    return f"BRIDGE_RUN_ID={run_id}".encode() in environ.split(b"\0")


def group_members(pgid: int) -> list[int]:
    """Every running process of this process group, by a walk of /proc (zombies are past killing)."""
    members = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        stat = read_stat(int(entry.name))
        if stat is not None and stat.pgid == pgid and stat.running:
            members.append(int(entry.name))
    return members


def _killpg(pgid: int) -> bool:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def kill_leftovers(pgid: int) -> bool:
    """Kill what is left of a run's group just after its main process (pid `pgid`) ended and was reaped.

    A group still signalable with no process `pgid` is the run's: the pid number stayed allocated as the
    group's id since its leader ended a moment ago. A process that holds that number now means the group had
    emptied and the number went to an unrelated process, whose group is left alone. True if anything was killed.
    """
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False  # nothing left (the usual case), or not ours to signal
    if read_stat(pgid) is not None:
        return False
    return _killpg(pgid)


def kill_orphan_group(run_id: str, record: GroupRecord) -> int:
    """Kill the group an earlier bridge process left behind, once proven to be this run's (see the module's
    docstring), even when its main process already died. The number of processes found and killed."""
    if record.boot_id is not None and record.boot_id != boot_id():
        return 0
    members = group_members(record.pgid)
    leader = read_stat(record.pid)
    leader_is_run = (
        leader is not None
        and leader.running
        and record.start_time is not None
        and leader.start_time == record.start_time
        and carries_run_id(record.pid, run_id) is not False
    )
    if not leader_is_run and not any(carries_run_id(pid, run_id) for pid in members):
        return 0
    _killpg(record.pgid)
    if leader_is_run and record.pid not in members:
        # The main process moved to a group of its own: it is still the run's, killed by its pid.
        with contextlib.suppress(ProcessLookupError):
            os.kill(record.pid, signal.SIGKILL)
        return len(members) + 1
    return len(members)

"""Starting a run's process and learning of its exit without asyncio's subprocess machinery.

`asyncio.create_subprocess_exec` costs the event loop far more than the spawn itself on Python 3.11: a transport
and a protocol per process, and its default child watcher starts one thread per child and waits for that thread
to start (a third of the bridge's event-loop time per run in the profile of `benchmarks/serve_throughput.py`).
A run's output goes to files, never to pipes, so none of that is needed: the process is started with
`subprocess.Popen` (a vfork, as asyncio does), and its exit is read from a pidfd the loop watches like a socket
(Linux 5.3+), then reaped with a non-blocking wait. Where there is no pidfd, asyncio's own path is used.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

_PIDFD = hasattr(os, "pidfd_open")


async def start_child(
    argv: list[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    stdout: int,
    stderr: int,
    preexec_fn: Callable[[], None] | None,
) -> tuple[int, asyncio.Future[int]]:
    """Start `argv` as a session leader with stdin from /dev/null and its output to the file descriptors `stdout`
    and `stderr`; its pid, and a future of its exit status (negative: the signal that killed it), set once it was
    reaped. Raises what `subprocess.Popen` raises."""
    # preexec_fn (only without setpriv) sets PR_SET_PDEATHSIG and nothing else.
    how: dict[str, Any] = {
        "cwd": cwd,
        "env": env,
        "stdin": subprocess.DEVNULL,
        "stdout": stdout,
        "stderr": stderr,
        "start_new_session": True,
        "preexec_fn": preexec_fn,
    }
    if not _PIDFD:
        proc = await asyncio.create_subprocess_exec(*argv, **how)
        return proc.pid, asyncio.ensure_future(proc.wait())
    # On the event loop, as asyncio's own spawn is: a vfork without preexec_fn, back once the child has exec'd.
    popen = subprocess.Popen(argv, **how)  # noqa: ASYNC220
    return popen.pid, _exit_of(popen)


def _exit_of(popen: subprocess.Popen[bytes]) -> asyncio.Future[int]:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[int] = loop.create_future()
    try:
        pidfd = os.pidfd_open(popen.pid)
    except OSError:  # a kernel older than pidfd_open (ENOSYS): waited for by a thread, as asyncio would

        def wait() -> None:
            code = popen.wait()
            loop.call_soon_threadsafe(lambda: None if done.done() else done.set_result(code))

        threading.Thread(target=wait, name=f"wait-{popen.pid}", daemon=True).start()
        return done

    def reap() -> None:
        code = popen.poll()  # the pidfd is readable once the process has exited: this does not block
        if code is None:
            return  # a spurious wake-up: keep watching
        loop.remove_reader(pidfd)
        os.close(pidfd)
        if not done.done():
            done.set_result(code)

    loop.add_reader(pidfd, reap)
    return done

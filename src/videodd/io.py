"""Files that are never half-written, and folders that one process at a time writes.

- :func:`atomic_path` / :func:`atomic_dir`: write to a temporary sibling, fsync, then rename over the
  target (the result gets the permissions the umask gives a new file, not the temporary's private ones);
- :func:`exclusive`: a lock file in a folder, holding the writer's PID, so that a second process
  writing the same run or store fails at once, naming the holder (a lock whose process is gone is
  taken over).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from videodd.errors import VideoddError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``.

    A crash mid-write leaves the old file (or none), never a half-written one.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes the file private (0600); a new file is not
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def strict_json(obj: Any) -> Any:
    """NaN / Inf floats -> None (null), recursively, so the file is strict JSON any parser reads."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    return obj


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write strict JSON atomically (indented, UTF-8; NaN / Inf become null)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(strict_json(data), indent=2, sort_keys=False, allow_nan=False) + "\n",
                       encoding="utf-8")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory; on success it replaces ``path`` as a whole."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes the folder private (0700); a new folder is not
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _umask() -> int:
    """The process's umask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


LOCK_NAME = ".videodd.lock"


class LockedError(VideoddError, RuntimeError):
    """Another live process writes the same folder."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


@contextlib.contextmanager
def exclusive(folder: str | os.PathLike[str], what: str = "folder") -> Iterator[Path]:
    """Hold ``FOLDER/.videodd.lock`` for the block (the folder is made if needed).

    The lock file holds this process's PID, host and command line. Another live holder on this host (or
    any holder on another host) is a :class:`LockedError` naming it; a lock left by a process that is
    gone (killed) is taken over.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    me = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv)[:300]}
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            try:
                holder = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                holder = {}
            pid, host = int(holder.get("pid", -1)), holder.get("host")
            if holder and host == me["host"] and not _alive(pid):
                path.unlink(missing_ok=True)  # stale: its process was killed
                continue
            raise LockedError(f"{folder}: this {what} is being written by process {pid} on {host} "
                              f"({holder.get('command', '?')}); wait for it to finish or stop it (a lock whose "
                              f"process is gone is taken over; {path} is the lock)") from None
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(me, fh)
        break
    else:
        raise LockedError(f"{folder}: could not take the lock {path}")
    try:
        yield path
    finally:
        try:
            if json.loads(path.read_text(encoding="utf-8")).get("pid") == me["pid"]:
                path.unlink()
        except (OSError, json.JSONDecodeError):
            pass

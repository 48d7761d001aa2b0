"""One writer per collection: a lock that holds across processes and across machines sharing a Chroma server.

The lock is a marker collection ``<collection>__rag_lock`` in the same Chroma store. Chroma refuses
a second collection of the same name, which makes taking it atomic for every client of that store,
embedded or server. Its metadata names the holder (pid, host, since) and carries a heartbeat the
holder refreshes while it works.

A lock is stale, and is taken over with a warning, when its holder is a dead process on this host,
or when its heartbeat is older than `STALE_SECONDS` (a holder on another machine that died). The
holder checks before each commit that the lock is still its own (`check`), so a writer whose lock
was taken over stops instead of writing beside the new one.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ingest.errors import IndexLocked
from ingest.store import Store

LOCK_SUFFIX = "__rag_lock"
HEARTBEAT_SECONDS = 5.0
STALE_SECONDS = 60.0  # 12 missed heartbeats: the holder is gone, not slow
POLL_SECONDS = 0.2


def lock_name(collection: str) -> str:
    return f"{collection}{LOCK_SUFFIX}"


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


@dataclass
class Holder:
    """Who holds a lock, as written in the marker's metadata."""

    owner: str
    pid: int
    host: str
    since: float
    heartbeat: float

    @classmethod
    def of(cls, meta: dict[str, Any]) -> Holder:
        return cls(
            owner=str(meta.get("owner", "")),
            pid=int(meta.get("pid", 0) or 0),
            host=str(meta.get("host", "")),
            since=float(meta.get("since", 0.0) or 0.0),
            heartbeat=float(meta.get("heartbeat", 0.0) or 0.0),
        )

    def metadata(self) -> dict[str, Any]:
        return {"owner": self.owner, "pid": self.pid, "host": self.host, "since": self.since,
                "heartbeat": self.heartbeat}

    def stale(self, now: float) -> str:
        """Why this holder is gone ("" when it may still be working)."""
        if self.host == socket.gethostname() and not pid_alive(self.pid):
            return f"process {self.pid} on {self.host} is gone"
        if now - self.heartbeat > STALE_SECONDS:
            return f"no heartbeat from process {self.pid} on {self.host} for {int(now - self.heartbeat)} s"
        return ""

    def since_text(self) -> str:
        return datetime.fromtimestamp(self.since, tz=timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class WriterLock:
    """The exclusive write lock of one collection. Use as a context manager."""

    store: Store
    wait: float = 5.0
    warnings: list[str] = field(default_factory=list)
    _me: Holder | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _beat: threading.Thread | None = None

    @property
    def name(self) -> str:
        return lock_name(self.store.name)

    def acquire(self) -> None:
        """Take the lock, waiting up to ``wait`` seconds; raise IndexLocked naming the holder."""
        now = time.time()
        me = Holder(uuid.uuid4().hex, os.getpid(), socket.gethostname(), now, now)
        deadline = time.monotonic() + max(0.0, self.wait)
        while True:
            if self.store.create_marker(self.name, me.metadata()):
                self._me = me
                break
            meta = self.store.read_marker(self.name)
            if meta is None:
                continue  # released between our two calls: try again at once
            holder = Holder.of(meta)
            why = holder.stale(time.time())
            if why:
                # Re-read just before deleting, so a lock taken over by someone else a moment ago stays.
                again = self.store.read_marker(self.name)
                if again is not None and Holder.of(again).owner == holder.owner:
                    self.store.delete_marker(self.name)
                    self.warnings.append(
                        f"took over the writer lock of collection '{self.store.name}' ({why})"
                    )
                continue
            if time.monotonic() >= deadline:
                raise IndexLocked(
                    f"collection '{self.store.name}' is being indexed by process {holder.pid} on {holder.host} "
                    f"since {holder.since_text()} — wait, or stop it (--wait SECONDS waits longer)",
                    collection=self.store.name, pid=holder.pid, host=holder.host, since=holder.since_text(),
                )
            time.sleep(POLL_SECONDS)
        self._stop.clear()
        self._beat = threading.Thread(target=self._heartbeat, name="rag-lock-heartbeat", daemon=True)
        self._beat.start()

    def check(self) -> None:
        """Raise IndexLocked when the lock is no longer ours (taken over as stale): stop writing."""
        meta = self.store.read_marker(self.name)
        if self._me is None or meta is None or Holder.of(meta).owner != self._me.owner:
            holder = Holder.of(meta or {})
            raise IndexLocked(
                f"lost the writer lock of collection '{self.store.name}' (now held by process {holder.pid} on "
                f"{holder.host or '?'}) — nothing was half-written; run `rag index` again when it is done",
                collection=self.store.name, pid=holder.pid, host=holder.host, since=holder.since_text(),
            )

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=HEARTBEAT_SECONDS)
            self._beat = None
        if self._me is None:
            return
        try:
            meta = self.store.read_marker(self.name)
            if meta is not None and Holder.of(meta).owner == self._me.owner:
                self.store.delete_marker(self.name)
        finally:
            self._me = None

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            me = self._me
            if me is None:
                return
            try:
                meta = self.store.read_marker(self.name)
                if meta is None or Holder.of(meta).owner != me.owner:
                    return  # taken over: check() tells the writer at its next commit
                me.heartbeat = time.time()
                self.store.write_marker(self.name, me.metadata())
            except Exception:  # noqa: BLE001 - a missed beat is retried; check() decides
                continue

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

"""Storage retention: the stored files of jobs that finished long ago are removed.

A job's files live at ``<STORAGE_DIR>/<kind>/<bucket>/<job id><suffix>``, a file or a folder
(:meth:`worker.storage.Storage.path_for`). Once a job has been finished for longer than
``STORAGE_RETENTION_DAYS``, nothing reads its file again: the user has the result, and a clone is
a new job. A pass removes those files and puts a "file removed" event on each job's timeline. The
job table decides, not the file's age: a file whose job is unfinished, finished recently, or
unknown to this database is kept. Leftovers of downloads cut short (``.<name>.<pid>.part``) go
once they are a day old. Files that several jobs share (the report kind's uploads) are the
kind's to prune: ``JobKind.prune_shared``.

Every worker process runs a pass about once an hour (:class:`RetentionLoop`). Processes on one
host share its storage directory, so a pass takes an exclusive ``flock`` on
``<STORAGE_DIR>/.prune.lock`` and the others skip that round. ``worker storage prune`` runs one
pass now.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import random
import re
import shutil
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from worker.db import Database
from worker.kinds import all_kinds
from worker.metrics import STORAGE_REMOVED
from worker.sql import retention as q

log = logging.getLogger(__name__)

#: Seconds between two passes of one process.
PASS_EVERY_SECONDS = 3600.0
#: A ``.part`` file this old belongs to a download that will never finish.
PARTIAL_AFTER_SECONDS = 86400.0
BATCH = 500
LOCK_NAME = ".prune.lock"

_STORED = re.compile(r"^(\d+)(?:\.[A-Za-z0-9]+)?$")  # 42.mp4, or the folder 42
#: A copy being written, renamed into place when complete: ``.<name>.<pid>.part``.
PARTIAL = re.compile(r"^\..+\.\d+\.part$")
_BUCKET = re.compile(r"^\d{3}$")


@dataclass
class PruneReport:
    """What one pass did (or, in a dry run, would do)."""

    removed: int = 0
    removed_bytes: int = 0
    #: Old enough files kept: their job is unfinished, finished too recently, or unknown here.
    kept: int = 0
    partials_removed: int = 0
    #: Files shared by several jobs, removed by their kind (``JobKind.prune_shared``).
    shared_removed: int = 0
    skipped: bool = False  # another process on this host was pruning
    dry_run: bool = False

    def as_dict(self) -> dict[str, object]:
        return {
            "removed": self.removed,
            "removed_bytes": self.removed_bytes,
            "kept": self.kept,
            "partials_removed": self.partials_removed,
            "shared_removed": self.shared_removed,
            "skipped": self.skipped,
            "dry_run": self.dry_run,
        }


def prune(
    root: Path,
    db: Database,
    retention_seconds: float,
    *,
    dry_run: bool = False,
) -> PruneReport:
    """One pass over ``root``: remove the files of jobs finished more than
    ``retention_seconds`` ago (each with a "file removed" event), and stale ``.part`` files."""
    if retention_seconds <= 0:
        raise ValueError("retention_seconds must be positive (0 means: keep every file)")
    report = PruneReport(dry_run=dry_run)
    if not root.is_dir():
        return report
    with _host_lock(root) as locked:
        if not locked:
            report.skipped = True
            return report
        now = time.time()
        candidates: dict[int, tuple[Path, int]] = {}
        for bucket, path, st in _entries(root):
            if PARTIAL.match(path.name):
                if st.st_mtime < now - PARTIAL_AFTER_SECONDS:
                    report.partials_removed += 1
                    if not dry_run:
                        _delete(path)
                continue
            stored = _STORED.match(path.name)
            if stored is None:
                continue
            job_id = int(stored.group(1))
            # Only where path_for puts that job; and a file younger than the retention cannot
            # belong to a job finished before it.
            if bucket == f"{job_id // 1000 % 1000:03d}" and st.st_mtime < now - retention_seconds:
                candidates[job_id] = (path, _size(path, st))
        ids = sorted(candidates)
        for i in range(0, len(ids), BATCH):
            _remove(
                db, [(j, *candidates[j]) for j in ids[i : i + BATCH]], retention_seconds, report
            )
        for kind in all_kinds():
            if kind.prune_shared is not None:
                files, size = kind.prune_shared(root, db, retention_seconds, dry_run)
                report.shared_removed += files
                report.removed_bytes += size
    if not dry_run:
        for what, n in (
            ("job", report.removed),
            ("shared", report.shared_removed),
            ("partial", report.partials_removed),
        ):
            if n:
                STORAGE_REMOVED.labels(what=what).inc(n)
    return report


def _remove(
    db: Database, batch: list[tuple[int, Path, int]], retention_seconds: float, report: PruneReport
) -> None:
    with db.transaction() as conn:
        rows = conn.execute(
            q.FINISHED_BEFORE, {"ids": [j for j, _, _ in batch], "age": retention_seconds}
        ).fetchall()
        done = {int(r["id"]): r["days"] for r in rows}
        gone = [(j, path, size) for j, path, size in batch if j in done]
        report.kept += len(batch) - len(gone)
        if not gone:
            return
        report.removed += len(gone)
        report.removed_bytes += sum(size for _, _, size in gone)
        if report.dry_run:
            return
        conn.execute(
            q.FILE_REMOVED_EVENTS,
            {
                "ids": [j for j, _, _ in gone],
                "details": [
                    f"{path.name} ({size:,} bytes) removed {done[j]:.0f} days after the job "
                    "finished (STORAGE_RETENTION_DAYS)"
                    for j, path, size in gone
                ],
            },
        )
        # The events commit after the files are gone: a pass that dies in between leaves at
        # worst a removed file without its event, never an event for a file still on disk.
        for _, path, _ in gone:
            _delete(path)


def _entries(root: Path) -> Iterator[tuple[str, Path, os.stat_result]]:
    """``<root>/<kind>/<bucket>/<entry>`` for every three-digit bucket: (bucket, path, stat)."""
    for kind in _dirs(root):
        for bucket in _dirs(kind):
            if not _BUCKET.match(bucket.name):
                continue  # not a bucket of path_for (the report kind's uploads, say)
            with os.scandir(bucket) as entries:
                for e in entries:
                    with contextlib.suppress(FileNotFoundError):
                        yield bucket.name, Path(e.path), e.stat(follow_symlinks=False)


def _size(path: Path, st: os.stat_result) -> int:
    if not stat.S_ISDIR(st.st_mode):
        return st.st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _delete(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _dirs(path: Path) -> list[Path]:
    with os.scandir(path) as entries:
        return [Path(e.path) for e in entries if e.is_dir(follow_symlinks=False)]


@contextlib.contextmanager
def _host_lock(root: Path) -> Iterator[bool]:
    """An exclusive, non-blocking ``flock`` on ``<root>/.prune.lock``: True if it is ours."""
    fd = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class RetentionLoop:
    """A daemon thread: the first pass a random minute or two after start, then hourly."""

    def __init__(self, root: Path, db: Database, retention_seconds: float) -> None:
        self.root = root
        self.db = db
        self.retention_seconds = retention_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> PruneReport | None:
        try:
            report = prune(self.root, self.db, self.retention_seconds)
        except Exception:  # a pass must never take the worker down; the next one retries
            log.exception("storage retention pass failed")
            return None
        if report.removed or report.partials_removed:
            log.info("storage retention: %s", report.as_dict())
        return report

    def start(self) -> None:
        if self.retention_seconds <= 0:
            return

        def loop() -> None:
            wait = random.uniform(60, 120)
            while not self._stop.wait(wait):
                self.run_once()
                wait = PASS_EVERY_SECONDS

        self._thread = threading.Thread(target=loop, name="storage-retention", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

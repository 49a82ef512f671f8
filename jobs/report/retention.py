"""The report kind's shared files: its stored uploads, pruned once no job needs them.

An upload (``report/uploads/ab/<sha256>.csv``) is shared by every job made from the same file:
the first submit, a replay, a clone, a retry. It is removed when it is older than the
retention (reusing it touches it, see :func:`jobs.report.upload.store_upload`) and no job that
names it is unfinished or finished within the retention. Copies cut short
(``.<name>.<pid>.part``) go once they are a day old. A clone or retry of a job whose upload
is gone is refused with "the stored upload is gone; upload the file again".
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from jobs.report.upload import UPLOADS_DIR
from worker.db import Database
from worker.retention import BATCH, PARTIAL, PARTIAL_AFTER_SECONDS

_UPLOAD = re.compile(r"^[0-9a-f]{64}\.csv$")

# Of these uploads, those a job still needs: it is unfinished, or finished within the retention.
# (A scan of the report jobs: this runs about once an hour, one process per host.)
STILL_NEEDED = """
SELECT DISTINCT payload->>'csv' AS csv
  FROM jobs
 WHERE kind = 'report'
   AND payload->>'csv' = ANY(%(paths)s::text[])
   AND (finished_at IS NULL OR finished_at >= now() - make_interval(secs => %(age)s))"""


def prune_uploads(
    root: Path, db: Database, retention_seconds: float, dry_run: bool
) -> tuple[int, int]:
    """Remove the uploads no job needs any more; return (files, bytes) removed."""
    base = root / UPLOADS_DIR
    if not base.is_dir():
        return 0, 0
    now = time.time()
    old: dict[str, tuple[Path, int]] = {}
    removed = removed_bytes = 0
    for sub in base.iterdir():
        if not sub.is_dir():
            continue
        for path in sub.iterdir():
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            if PARTIAL.match(path.name) and st.st_mtime < now - PARTIAL_AFTER_SECONDS:
                removed, removed_bytes = removed + 1, removed_bytes + st.st_size
                if not dry_run:
                    path.unlink(missing_ok=True)
            elif _UPLOAD.match(path.name) and st.st_mtime < now - retention_seconds:
                old[f"{UPLOADS_DIR}/{sub.name}/{path.name}"] = (path, st.st_size)
    names = sorted(old)
    for i in range(0, len(names), BATCH):
        batch = names[i : i + BATCH]
        with db.transaction() as conn:
            rows = conn.execute(STILL_NEEDED, {"paths": batch, "age": retention_seconds})
            needed = {r["csv"] for r in rows.fetchall()}
        for name in batch:
            if name in needed:
                continue
            path, size = old[name]
            removed, removed_bytes = removed + 1, removed_bytes + size
            if not dry_run:
                path.unlink(missing_ok=True)
    return removed, removed_bytes

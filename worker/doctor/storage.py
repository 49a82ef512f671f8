"""The storage check: STORAGE_DIR writable, with room for the largest file a job kind stores."""

from __future__ import annotations

import shutil

from worker.config import Settings
from worker.doctor.check import Check
from worker.kinds import all_kinds

#: Less free space than this in STORAGE_DIR gets a warning (and less than the largest file a
#: job kind stores, a failure).
LOW_DISK_BYTES = 5 * 1024**3


def storage_check(settings: Settings) -> Check:
    from worker.storage import Storage

    path = settings.storage_dir
    storage = Storage(path)
    try:
        storage.check_writable()
        free = storage.free_bytes()
    except OSError as exc:
        return Check(
            "storage",
            False,
            f"STORAGE_DIR {path} is not writable ({exc.strerror or type(exc).__name__})",
            f"Create {path} and let the worker's user write to it (systemd: StateDirectory= or "
            "ReadWritePaths=), or point STORAGE_DIR at a writable folder.",
        )
    total = shutil.disk_usage(path).total
    detail = f"{path} writable, {free / 1024**3:.1f} GiB free of {total / 1024**3:.1f} GiB"
    needs = [need(settings) for kind in all_kinds() if (need := kind.largest_file) is not None]
    largest, what = max(needs, default=(0, ""))
    if free < largest:
        return Check(
            "storage",
            False,
            detail + f", less than {what}",
            "Free disk space in STORAGE_DIR (old results can be archived) or move it to a bigger "
            "disk.",
        )
    if free < LOW_DISK_BYTES:
        return Check(
            "storage",
            True,
            detail + f", below {LOW_DISK_BYTES / 1024**3:.0f} GiB",
            "Free disk space in STORAGE_DIR soon (old results can be archived).",
            warning=True,
        )
    return Check("storage", True, detail)

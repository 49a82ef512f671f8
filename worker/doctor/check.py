"""A finding of `worker doctor` (:class:`Check`), and the small helpers every check uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from worker.redaction import redact


@dataclass(frozen=True)
class Check:
    """One finding. ``ok`` False fails the doctor (exit 1); a ``warning`` is ok but needs a look."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    warning: bool = False

    @property
    def level(self) -> str:
        return "fail" if not self.ok else "warn" if self.warning else "ok"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "warning": self.warning,
            "detail": redact(self.detail),
            "fix": redact(self.fix),
        }


def not_checked(name: str, why: str, fix: str) -> Check:
    return Check(name, False, f"not checked: {why}", fix)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return redact(text.splitlines()[0] if text else type(exc).__name__)

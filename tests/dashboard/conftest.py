"""`worker dashboard` on a free port in a thread, with an admin and a viewer, and an HTTP client
that logs in the way a browser does (the login form's CSRF cookie, then the session cookie)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.loop_server import LoopServer
from tests.pipeline.conftest import Pipeline, pipeline, sim, wait_for, worker  # noqa: F401
from worker.config import Settings
from worker.dashboard import auth
from worker.dashboard.app import Dashboard
from worker.db import Database

PASSWORDS = {"ada": "admin-password-1", "vic": "viewer-password-1"}


def cheap_hash(password: str) -> str:
    """A real scrypt hash at the lowest cost the parser accepts: tests log in many times."""
    return auth.hash_password(password, log2_n=10)


@pytest.fixture(scope="session")
def users() -> dict[str, auth.User]:
    return auth.parse_users(
        f"ada:admin:{cheap_hash(PASSWORDS['ada'])},vic:viewer:{cheap_hash(PASSWORDS['vic'])}"
    )


class RunningDashboard(LoopServer):
    """The dashboard's aiohttp server on its own event loop in a daemon thread."""

    def __init__(self, settings: Settings, db: Database, users: dict[str, auth.User]) -> None:
        self.dashboard = Dashboard(settings, users, db=db, live_interval=0.2)
        super().__init__(self.dashboard.start, self.dashboard.stop, "dashboard")


@pytest.fixture
def dashboard(
    settings: Settings, db: Database, users: dict[str, auth.User]
) -> Iterator[RunningDashboard]:
    running = RunningDashboard(settings, db, users)
    yield running
    running.stop()


@pytest.fixture
def live_dashboard(
    pipeline: Pipeline,  # noqa: F811
    users: dict[str, auth.User],
) -> Iterator[RunningDashboard]:
    """The dashboard over the pipeline's settings (its keys, simulator and workers)."""
    running = RunningDashboard(pipeline.settings, pipeline.db, users)
    yield running
    running.stop()


CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


class Browserless:
    """An HTTP client that behaves like a browser on this site (cookies, Origin on POSTs)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = httpx.Client(base_url=base, follow_redirects=False, timeout=30)

    def login(self, name: str, password: str | None = None) -> httpx.Response:
        page = self.http.get("/login")
        token = CSRF_FIELD.search(page.text)
        assert token, page.text
        return self.http.post(
            "/login",
            data={"name": name, "password": password or PASSWORDS[name], "csrf": token.group(1)},
            headers={"Origin": self.base},
        )

    def csrf(self, path: str = "/") -> str:
        page = self.http.get(path)
        token = CSRF_FIELD.search(page.text)
        assert token, f"no CSRF token on {path}: {page.status_code}"
        return token.group(1)

    def post(self, path: str, data: dict[str, Any] | None = None, **kw: Any) -> httpx.Response:
        headers = {"Origin": self.base, **kw.pop("headers", {})}
        return self.http.post(path, data=data or {}, headers=headers, **kw)

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def browserless(dashboard: RunningDashboard) -> Iterator[Callable[[str | None], Browserless]]:
    made: list[Browserless] = []

    def make(user: str | None = None) -> Browserless:
        b = Browserless(dashboard.url)
        if user:
            assert b.login(user).status_code == 303
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()

"""`worker demo --dashboard`: the dashboard process it starts, logged into with the one-time
credentials it prints."""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx

from worker.config import Settings
from worker.dashboard import demo


def test_the_demo_dashboard_takes_its_one_time_credentials(
    settings: Settings, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "REDIS_NAMESPACE": settings.redis_namespace,
    }
    process, url, password = demo.start(env, tmp_path)
    try:
        assert url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=url) as http:
            form = http.get("/login").text
            token = re.search(r'name="csrf" value="([^"]+)"', form)
            assert token
            wrong = http.post(
                "/login",
                data={"name": demo.DEMO_USER, "password": "guess-guess", "csrf": token.group(1)},
                headers={"Origin": url},
            )
            assert wrong.status_code == 401
            ok = http.post(
                "/login",
                data={"name": demo.DEMO_USER, "password": password, "csrf": token.group(1)},
                headers={"Origin": url},
            )
            assert ok.status_code == 303
            assert "demo <small>(admin)</small>" in http.get("/").text
    finally:
        process.terminate()
        assert process.wait(20) == 0
    assert password not in (tmp_path / "dashboard.log").read_text()

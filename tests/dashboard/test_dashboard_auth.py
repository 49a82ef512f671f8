"""Login, roles and CSRF over real HTTP (no browser): fast checks of every refusal."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.dashboard.conftest import PASSWORDS, Browserless, RunningDashboard
from worker.client import Client
from worker.config import Settings
from worker.dashboard import auth
from worker.dashboard.app import check_bind
from worker.errors import ConfigError

Make = Callable[..., Browserless]


def _failed_job(client: Client, user_id: int = 7) -> int:
    client.grant(user_id, 5)
    (job_id,) = client.submit_video(
        user_id=user_id, product={"title": "Mug", "image_url": "https://example.test/m.jpg"}
    ).job_ids
    client.cancel(job_id)
    return job_id


def test_every_page_needs_a_login(browserless: Make) -> None:
    b = browserless()
    for path in ("/", "/jobs", "/jobs/1", "/users/1", "/keys"):
        r = b.http.get(path)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next="), path
    assert b.http.get("/live/overview").status_code == 403
    assert b.post("/jobs/1/retry").status_code == 403


def test_login_with_a_wrong_password_is_refused(browserless: Make) -> None:
    b = browserless()
    r = b.login("ada", "not-the-password")
    assert r.status_code == 401 and "Wrong name or password" in r.text
    assert b.login("nobody", "whatever-it-is").status_code == 401
    assert b.http.get("/").status_code == 303


def test_login_then_pages_render(browserless: Make, client: Client) -> None:
    job_id = _failed_job(client)
    b = browserless("vic")
    for path in ("/", "/jobs", f"/jobs/{job_id}", "/users/7", "/keys", "/jobs?status=cancelled"):
        r = b.http.get(path)
        assert r.status_code == 200, (path, r.text[:500])
        assert "Content-Security-Policy" in r.headers
    assert f'href="/jobs/{job_id}"' in b.http.get("/jobs?status=cancelled").text


def test_login_form_without_its_csrf_token_is_refused(browserless: Make) -> None:
    b = browserless()
    b.http.get("/login")
    r = b.post("/login", {"name": "ada", "password": PASSWORDS["ada"]})
    assert r.status_code == 403 and "CSRF" in r.text


def test_viewer_sees_no_action_and_a_forged_post_is_refused(
    browserless: Make, client: Client
) -> None:
    job_id = _failed_job(client)
    viewer = browserless("vic")
    page = viewer.http.get(f"/jobs/{job_id}").text
    assert "/retry" not in page and "/cancel" not in page
    token = viewer.csrf(f"/jobs/{job_id}")
    r = viewer.post(f"/jobs/{job_id}/retry", {"csrf": token})
    assert r.status_code == 403 and "admin" in r.text
    assert (
        viewer.post(
            "/jobs/bulk", {"csrf": token, "action": "retry", "status": "cancelled", "count": "1"}
        ).status_code
        == 403
    )
    assert viewer.post("/keys/kie/k1/disable", {"csrf": token}).status_code == 403
    assert client.job(job_id)["events"][-1]["event"] == "cancelled"
    assert not client.db.fetchone("SELECT 1 FROM jobs WHERE cloned_from = %s", (job_id,))


def test_a_post_without_a_csrf_token_is_refused(browserless: Make, client: Client) -> None:
    job_id = _failed_job(client)
    admin = browserless("ada")
    assert admin.post(f"/jobs/{job_id}/retry").status_code == 403
    assert admin.post(f"/jobs/{job_id}/retry", {"csrf": "forged"}).status_code == 403
    token = admin.csrf()
    # The right token, sent from another site's page: refused too.
    r = admin.post(
        f"/jobs/{job_id}/retry", {"csrf": token}, headers={"Origin": "https://evil.test"}
    )
    assert r.status_code == 403
    assert not client.db.fetchone("SELECT 1 FROM jobs WHERE cloned_from = %s", (job_id,))


def test_admin_retry_names_the_operator_on_the_timeline(browserless: Make, client: Client) -> None:
    job_id = _failed_job(client)
    admin = browserless("ada")
    token = admin.csrf(f"/jobs/{job_id}")
    r = admin.post(f"/jobs/{job_id}/retry", {"csrf": token, "back": f"/jobs/{job_id}"})
    assert r.status_code == 303 and r.headers["location"] == f"/jobs/{job_id}"
    clone = client.db.fetchone("SELECT id FROM jobs WHERE cloned_from = %s", (job_id,))
    assert clone is not None
    events = client.job(job_id)["events"]
    assert events[-1]["event"] == "retried" and "by ada" in events[-1]["detail"]
    assert f"retried as job {clone['id']}" in admin.http.get(f"/jobs/{job_id}").text
    # Cancel the new (queued) job: the client's cancel event names the operator.
    r = admin.post(f"/jobs/{clone['id']}/cancel", {"csrf": token})
    assert r.status_code == 303
    cancelled = client.job(clone["id"])
    assert cancelled["status"] == "cancelled" and cancelled["credits"] == "refunded"
    assert any("ada" in e["detail"] for e in cancelled["events"] if e["event"] == "cancelled")


def test_logout_ends_the_session(browserless: Make) -> None:
    b = browserless("ada")
    assert b.http.get("/").status_code == 200
    assert b.post("/logout", {"csrf": b.csrf()}).status_code == 303
    assert b.http.get("/").status_code == 303


def test_users_parse_with_one_sentence_per_mistake() -> None:
    good = auth.hash_password("long-enough", log2_n=10)
    users = auth.parse_users(f"a:admin:{good}, b:viewer:{good}\n")
    assert users["a"].is_admin and not users["b"].is_admin
    assert auth.verify_password("long-enough", good) and not auth.verify_password("wrong", good)
    for raw, words in [
        ("a:admin", "name:role:hash"),
        (f"a:root:{good}", "expected viewer or admin"),
        ("a:admin:plaintext", "does not hold a password hash"),
        (f"a:admin:{good},a:viewer:{good}", "twice"),
        (f"bad name:admin:{good}", "invalid name"),
    ]:
        with pytest.raises(ConfigError, match=words):
            auth.parse_users(raw)
    with pytest.raises(ConfigError, match="at least 8"):
        auth.hash_password("short")
    assert "plaintext" not in repr(users["a"]) and good not in repr(users["a"])


def test_listening_beyond_loopback_needs_users(settings: Settings) -> None:
    check_bind("127.0.0.1", {})
    check_bind("::1", {})
    with pytest.raises(ConfigError, match=r"refusing to listen on 0\.0\.0\.0"):
        check_bind("0.0.0.0", {})
    env = {"DATABASE_URL": settings.database_url, "PATH": "/usr/bin:/bin", "DASHBOARD_USERS": ""}
    r = subprocess.run(
        [sys.executable, "-m", "worker.cli.main", "dashboard", "--host", "0.0.0.0", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "refusing to listen on 0.0.0.0" in r.stderr.lower()


def test_hash_password_reads_stdin() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "worker.cli.main", "dashboard", "hash-password"],
        input="correct horse battery\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert auth.verify_password("correct horse battery", r.stdout.strip())
    assert "correct horse" not in r.stdout


def test_dashboard_fixture_serves_health(dashboard: RunningDashboard) -> None:
    import httpx

    assert httpx.get(dashboard.url + "/healthz").text == "ok\n"


def test_redirects_after_login_and_actions_stay_on_this_site() -> None:
    from worker.dashboard.views import local_path

    assert local_path("/jobs?status=failed", "/") == "/jobs?status=failed"
    for hostile in ("//evil.test", "/\\evil.test", "https://evil.test/", "evil.test", "/\x00x", ""):
        assert local_path(hostile, "/") == "/", hostile


def test_users_come_from_the_environment_or_a_credential_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    good = auth.hash_password("long-enough", log2_n=10)
    monkeypatch.delenv("DASHBOARD_USERS", raising=False)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert auth.load_users(env_file=None) == {}
    (tmp_path / "dashboard_users").write_text(f"ops:admin:{good}\n")
    assert list(auth.load_users(env_file=None)) == ["ops"]
    monkeypatch.setenv("DASHBOARD_USERS", f"sup:viewer:{good}")  # the environment wins
    assert list(auth.load_users(env_file=None)) == ["sup"]

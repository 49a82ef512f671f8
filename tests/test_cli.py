"""The `worker` command line: JSON on stdout, one sentence on stderr, exit codes 0/1/2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from worker.cli.main import cli
from worker.config import Settings


@pytest.fixture
def run(settings: Settings, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("REDIS_NAMESPACE", settings.redis_namespace)
    monkeypatch.chdir(settings.storage_dir)  # no stray .env

    def invoke(*args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(cli, list(args))
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.stdout, result.stderr

    return invoke


def test_grant_submit_show_and_check(run) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run("credits", "grant", "7", "5", "--json")
    assert code == 0 and json.loads(out)["available"] == 5
    code, out, _ = run(
        "submit",
        "--user",
        "7",
        "--image-url",
        "https://x.test/a.png",
        "--title",
        "Lamp",
        "--count",
        "3",
        "--json",
    )
    sub = json.loads(out)
    assert code == 0 and set(sub) >= {"job_ids", "request_id", "credits_held", "available"}
    assert sub["available"] == 2

    code, out, _ = run("jobs", "ls", "--json", "--user", "7")
    jobs = json.loads(out)
    assert [j["id"] for j in jobs] == sorted(sub["job_ids"], reverse=True)
    required = {
        "id",
        "kind",
        "user_id",
        "chat_id",
        "status",
        "step",
        "attempts",
        "error_class",
        "error",
        "provider_task_id",
        "key_name",
        "credits",
        "result",
        "created_at",
        "finished_at",
    }
    assert required <= set(jobs[0])

    code, out, _ = run("jobs", "show", str(sub["job_ids"][0]), "--json")
    job = json.loads(out)
    assert code == 0 and job["events"][0].keys() == {"at", "event", "detail"}

    code, out, _ = run("jobs", "cancel", str(sub["job_ids"][0]))
    assert code == 0 and "refunded" in out
    code, out, _ = run("credits", "show", "7", "--json")
    assert json.loads(out) == {"user_id": 7, "available": 3, "held": 2, "spent": 0, "refunded": 1}

    code, out, _ = run("ledger", "check", "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"] is True
    assert all({"name", "ok", "detail"} <= set(c) for c in report["checks"])

    code, out, _ = run("jobs", "show", str(sub["job_ids"][1]))
    assert code == 0 and "timeline" in out and "submitted" in out


def test_refusals_exit_1_with_one_sentence(run) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run(
        "submit", "--user", "8", "--image-url", "https://x.test/a.png", "--title", "Lamp"
    )
    assert code == 1 and out == "" and "needs 1 credit but has 0 available" in err.lower()
    assert len(err.strip().splitlines()) == 1
    code, _, err = run("submit", "--user", "8", "--image-url", "ftp://x", "--title", "Lamp")
    assert code == 1 and "product.image_url" in err
    code, _, err = run("jobs", "show", "999")
    assert code == 1 and "there is no job 999" in err.lower()
    code, _, err = run("jobs", "cancel", "999")
    assert code == 1


def test_bad_usage_exits_2(run) -> None:  # type: ignore[no-untyped-def]
    code, _, _ = run("jobs", "ls", "--status", "bogus")
    assert code == 2
    code, _, err = run("credits", "grant", "x", "1")
    assert code == 2 and "x" in err


def test_ledger_check_exit_1_when_broken(run, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    import psycopg

    run("credits", "grant", "9", "2")
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute("UPDATE accounts SET credits_posted = 99 WHERE user_id = 9")
    code, out, _ = run("ledger", "check", "--json")
    assert code == 1 and json.loads(out)["ok"] is False


def test_config_error_is_one_sentence_exit_2(settings: Settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": settings.database_url,
        "KIE_API_KEYS": "good=sk-abcdefghijklmnop,,",
        "HOME": str(tmp_path),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "worker.cli.main", "credits", "show", "1"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: KIE_API_KEYS")
    assert "sk-abcdefghijklmnop" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_unreachable_database_is_one_sentence(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": "postgresql://u:hunter22@127.0.0.1:1/x",
        "HOME": str(tmp_path),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "worker.cli.main", "jobs", "ls"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 1 and "cannot reach postgresql" in proc.stderr.lower()
    assert "hunter22" not in proc.stderr


def test_keys_ls_disable_enable_by_name_never_the_secret(
    run, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KIE_API_KEYS", "main=sk-cli-secret-aaaa,spare=sk-cli-secret-bbbb")
    code, out, _ = run("keys", "ls", "--json")
    keys = json.loads(out)
    assert code == 0 and [(k["name"], k["state"]) for k in keys] == [
        ("main", "active"),
        ("spare", "active"),
    ]
    assert "sk-cli-secret" not in out
    code, out, _ = run("keys", "disable", "main", "--reason", "rotating")
    assert code == 0 and "disabled" in out
    code, out, _ = run("keys", "ls", "--json")
    assert json.loads(out)[0]["state"] == "disabled" and json.loads(out)[0]["reason"] == "rotating"
    code, out, _ = run("keys", "enable", "main")
    assert code == 0 and "active" in out
    code, _, err = run("keys", "enable", "nope")
    assert code == 1 and "nope" in err

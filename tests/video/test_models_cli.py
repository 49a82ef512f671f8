"""The operator's side of models and tiers: `worker models ls|enable|disable`, `worker submit
--tier`, what `worker jobs show|ls` say of the tier and model, and `worker doctor`'s count of
videos per tier."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from jobs.video.health import videos_left
from jobs.video.models import DEFAULT_CHAIN, live_models
from worker.cli.main import cli
from worker.config import Settings, load_settings

Run = Callable[..., tuple[int, str, str]]

TIERS = """
[tiers.standard]
price = 1
chain = ["bytedance/seedance-2-mini", "kling-2.6/image-to-video"]

[tiers.premium]
price = 4
chain = [{ model = "veo3_fast", resolution = "1080p" }]
"""


@pytest.fixture
def run(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Run:
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("REDIS_NAMESPACE", settings.redis_namespace)
    monkeypatch.chdir(settings.storage_dir)  # no stray .env
    tiers = Path(settings.storage_dir) / "tiers.toml"
    tiers.write_text(TIERS)
    monkeypatch.setenv("VIDEO_TIERS_FILE", str(tiers))

    def invoke(*args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(cli, list(args))
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.stdout, result.stderr

    return invoke


def test_models_ls_disable_enable(run: Run) -> None:
    code, out, _ = run("models", "ls", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and set(rows) == {m.id for m in live_models()}
    assert {r["state"] for r in rows.values()} == {"live"}
    code, out, _ = run("models", "disable", "veo3_fast", "--reason", "too slow today")
    assert code == 0 and out.strip() == "model veo3_fast is disabled: too slow today"
    _, out, _ = run("models", "ls", "--json")
    veo = next(r for r in json.loads(out) if r["name"] == "veo3_fast")
    assert (veo["state"], veo["reason"], veo["kind"]) == ("disabled", "too slow today", "video")
    code, out, _ = run("models", "enable", "veo3_fast")
    assert code == 0 and out.strip() == "model veo3_fast is live"
    code, _, err = run("models", "disable", "sora-2-image-to-video")
    assert code == 1 and "no model 'sora-2-image-to-video'" in err
    assert err.count("\n") <= 1


def test_submit_a_tier_and_see_it_in_jobs_show_and_ls(run: Run) -> None:
    run("credits", "grant", "7", "10")
    product = ["--user", "7", "--image-url", "https://x.test/a.png", "--title", "Lamp"]
    code, out, _ = run("submit", *product, "--tier", "premium", "--json")
    assert code == 0 and json.loads(out)["credits_held"] == 4
    (job,) = json.loads(out)["job_ids"]
    code, out, _ = run("submit", *product, "--json")
    assert code == 0 and json.loads(out)["credits_held"] == 1
    code, _, err = run("submit", *product, "--tier", "gold", "--json")
    assert code == 1 and "tier must be one of standard, premium" in err
    _, out, _ = run("jobs", "show", str(job), "--json")
    shown = json.loads(out)
    assert shown["tier"] == "premium" and shown["model"] is None  # not made yet
    assert shown["payload"]["chain"] == [
        {
            "model": "veo3_fast",
            "options": {"duration": 8, "resolution": "1080p", "orientation": "auto", "sound": True},
        }
    ]
    _, out, _ = run("jobs", "show", str(job))
    assert "premium / -" in out
    _, out, _ = run("jobs", "ls", "--json", "--user", "7")
    assert [(j["tier"], j["model"]) for j in json.loads(out)] == [
        ("standard", None),
        ("premium", None),
    ]


def test_doctor_counts_videos_per_tier(tmp_path: Path) -> None:
    path = tmp_path / "tiers.toml"
    path.write_text(TIERS)
    settings = load_settings(_env_file=None, video_tiers_file=str(path))
    assert videos_left(settings, 1000) == (
        "about 24 videos of tier standard (41 each), about 15 videos of tier premium (65 each)"
    )
    default = load_settings(_env_file=None)
    assert videos_left(default, 100).startswith("about 2 videos of tier standard (41 each)")
    assert DEFAULT_CHAIN[0] == "bytedance/seedance-2-mini"

"""Sentry through worker.observability.init_sentry with a capturing transport: one event per
failed job (not per attempt), and no configured secret anywhere in what would be sent."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from jobs.video.models import DEFAULT_CHAIN
from tests.pipeline.conftest import BOT_TOKEN, Pipeline
from worker.alerts import alert
from worker.config import load_settings
from worker.observability import init_sentry

DSN = "https://public@sentry.example/1"


class Capture(Transport):
    """Keeps every envelope instead of sending it."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    def events(self) -> list[dict[str, Any]]:
        return [
            item.payload.json
            for e in self.envelopes
            for item in e.items
            if item.type == "event" and item.payload.json is not None
        ]


@pytest.fixture
def sentry(pipeline: Pipeline) -> Iterator[tuple[Capture, list[str]]]:
    settings = load_settings(**pipeline.overrides, sentry_dsn=DSN)
    secrets = [s for s in settings.secrets() if s != DSN]
    secrets.append(BOT_TOKEN.split(":", 1)[1])  # the token's secret half alone
    transport = Capture()
    assert init_sentry(settings, transport=transport)
    noisy = {name: logging.getLogger(name).level for name in ("openai", "httpx", "jobs", "worker")}
    for name in noisy:  # every log line becomes a breadcrumb, request URLs and headers included
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield transport, secrets
    finally:
        for name, level in noisy.items():
            logging.getLogger(name).setLevel(level)
        sentry_sdk.get_client().close()
        sentry_sdk.get_global_scope().set_client(None)


def test_one_event_per_failed_job_and_no_secrets(
    pipeline: Pipeline, sentry: tuple[Capture, list[str]]
) -> None:
    transport, secrets = sentry
    pipeline.client.grant(31, 5)

    # INTERNAL: a payload our step cannot read fails three attempts, then the job.
    internal = pipeline.submit(31)[0]
    pipeline.db.fetchone(
        "UPDATE jobs SET payload = payload - 'title' WHERE id = %s RETURNING id", (internal,)
    )
    # UNAVAILABLE: every model of the chain was withdrawn; the job waits to its deadline.
    pipeline.reconfigure(video_deadline_seconds=6.0)
    pipeline.sim.configure({"kie": {"withdrawn_models": list(DEFAULT_CHAIN)}})
    unavailable = pipeline.submit(31)[0]

    # Breadcrumbs, tags and contexts holding secrets, then an alert from this thread.
    with sentry_sdk.isolation_scope() as scope:
        scope.set_tag("leaky", secrets[0])
        scope.set_context("leaky", {"token": BOT_TOKEN, "nested": [{"key": secrets[1]}]})
        logging.getLogger("worker.test").warning(
            "calling KIE with %s and Telegram with /bot%s/getMe", secrets[0], BOT_TOKEN
        )
        alert("ops test", f"key {secrets[1]} misbehaved", job="ops-test", key=secrets[0])

    pipeline.start_worker()
    jobs = pipeline.wait([internal, unavailable])
    assert [(j["status"], j["error_class"]) for j in jobs] == [
        ("failed", "INTERNAL"),
        ("failed", "UNAVAILABLE"),
    ]
    assert pipeline.events(internal).count("retry") == 2  # three attempts
    sentry_sdk.flush(timeout=5)

    events = transport.events()
    per_job: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        per_job.setdefault(str(event.get("tags", {}).get("job")), []).append(event)
    assert len(per_job[str(internal)]) == 1, per_job[str(internal)]
    assert len(per_job[str(unavailable)]) == 1, per_job[str(unavailable)]
    assert len(per_job["ops-test"]) == 1
    assert len(events) == 3, [e.get("message") or e.get("exception") for e in events]

    # The INTERNAL event carries the bug itself, with its stack trace.
    bug = per_job[str(internal)][0]
    assert bug["exception"]["values"][-1]["type"] == "KeyError"
    assert bug["exception"]["values"][-1]["stacktrace"]["frames"]
    assert bug["tags"]["step"] == "prompt"
    assert "UNAVAILABLE" in per_job[str(unavailable)][0]["message"]

    # Secrets were there to leak, and were masked everywhere.
    mine = per_job["ops-test"][0]
    crumbs = [c.get("message") or "" for c in mine["breadcrumbs"]["values"]]
    assert any("calling KIE with [REDACTED]" in c for c in crumbs), crumbs
    assert mine["tags"]["leaky"] == "[REDACTED]"
    assert mine["contexts"]["leaky"]["token"] == "[REDACTED]"
    wire = b"".join(e.serialize() for e in transport.envelopes)
    for secret in secrets:
        assert secret.encode() not in wire, secret

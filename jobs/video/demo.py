"""The video kind's part of `worker demo`: its keys, its simulator setup and the orders it submits.

Most orders succeed; one is refused by content policy; one is refused at submit for lack of
credits; one KIE key has no credit, so it is quarantined and the other key carries the load.
The first model of the default chain is paused in the simulator, as KIE pauses models: the
first job to try it falls through to the next model (its timeline says ``model unavailable``),
and every other job skips it without a call.
Every video is found by KIE's callback (the simulator calls `worker webhooks` when it is done).
Loaded only by `worker demo` (:mod:`worker.demo`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from jobs.video.models import DEFAULT_CHAIN
from worker.client import Client
from worker.demo import DemoPlace, DemoScenario
from worker.errors import InsufficientCredits

KIE_KEYS = {"demo-main": "demo-kie-main-secret", "demo-broke": "demo-kie-broke-secret"}
OPENAI_KEY = "demo-openai-secret"

#: (user, chat, title, count, credits granted)
ORDERS = [
    (1001, 1001, "Hand-thrown ceramic mug", 3, 5),
    (1002, 1002, "Walnut desk organiser", 1, 2),
    (1003, 1003, "Linen tote bag", 1, 1),
    (1004, 1004, "FORBIDDEN replica watch", 1, 1),  # refused by the content policy
    (1005, 1005, "Brass pocket compass", 3, 1),  # refused at submit: not enough credits
]


def environment(place: DemoPlace) -> dict[str, str]:
    """The video kind's variables: keys and base URLs of the simulator, callbacks on."""
    return {
        "KIE_API_KEYS": ",".join(f"{k}={v}" for k, v in KIE_KEYS.items()),
        "KIE_BASE_URL": place.simulator_url,
        "OPENAI_API_KEYS": f"demo-openai={OPENAI_KEY}",
        "OPENAI_BASE_URL": f"{place.simulator_url}/v1",
        "KIE_TIMEOUT": "10",
        "KIE_CALLBACK_URL": f"{place.webhook_url}/callbacks/video/kie",
    }


def simulator(render_seconds: float) -> dict[str, Any]:
    """The simulator's KIE and OpenAI setup: one funded key, one empty, refusals as refusals."""
    return {
        "kie": {
            "render_seconds": render_seconds,
            "render_jitter": 1.0,
            "keys": {
                KIE_KEYS["demo-main"]: {"credits": 1000},
                KIE_KEYS["demo-broke"]: {"credits": 0},
            },
            # KIE pauses models without notice: the demo's jobs fall through to the next one.
            "model_states": {DEFAULT_CHAIN[0]: "paused"},
        },
        "openai": {"refusal_mode": "refusal"},
    }


def submit(client: Client) -> list[str]:
    """Grant each user's credits and submit the orders; the refusals at submit, one line each."""
    refused: list[str] = []
    for user, chat, title, count, credits in ORDERS:
        client.grant(user, credits, idempotency_key="demo-grant")
        try:
            client.submit_video(
                user_id=user,
                chat_id=chat,
                count=count,
                product={"title": title, "image_url": "https://example.test/product.jpg"},
            )
        except InsufficientCredits as exc:
            refused.append(f"user {user}: {exc}")
    return refused


def describe(payload: Mapping[str, Any]) -> str:
    return str(payload.get("title", ""))


def notes(client: Client, jobs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The fallbacks: jobs that found a model paused and went on to the next one (the jobs
    creating at the same moment each find it; the pause then reaches every worker)."""
    fell: Counter[tuple[str, str]] = Counter()
    for j in jobs:
        for e in client.job(j["id"])["events"]:
            if e["event"] == "model unavailable":
                fell[(e["detail"].split(":", 1)[0], str(j.get("model")))] += 1
    rows = [
        ("fallback", f"{paused} paused at KIE: {n} job(s) went on to {model} at once")
        for (paused, model), n in fell.items()
    ]
    return rows or [("fallback", "none")]


SCENARIO = DemoScenario(
    kind="video",
    environment=environment,
    simulator=simulator,
    submit=submit,
    users=tuple(user for user, *_ in ORDERS),
    describe=describe,
    callback_note="the simulator calls back when a video is done, as KIE does",
    notes=notes,
)

"""Health checks of the video kind's provider keys, for `worker doctor`.

KIE: the account's credit balance (low warns, none fails), and how many videos of each tier it
pays for. OpenAI: an authenticated, free
``GET /models`` that also says whether the configured model exists.
"""

from __future__ import annotations

from typing import Any

import openai

from jobs.video import KIE, OPENAI
from jobs.video.kie import KieClient
from jobs.video.prompt import PROVIDER, PromptGenerator
from jobs.video.settings import video_settings
from worker.config import ApiKey, Settings
from worker.doctor import Check, provider_failure
from worker.errors import ErrorClass, ProviderError


def kie_check(
    settings: Settings, key: ApiKey, *, timeout: float, low_credits: float, **_: Any
) -> Check:
    name = f"kie key {key.name}"
    client = KieClient.from_settings(settings, timeout=timeout)
    try:
        balance = client.credit_balance(key)
    except ProviderError as err:
        return provider_failure(name, err, KIE.label, KIE.keys_variable, key.name)
    finally:
        client.close()
    detail = f"balance {balance:g} credits; {videos_left(settings, balance)}"
    if balance < low_credits:
        return Check(
            name,
            True,
            f"{detail}, below {low_credits:g}",
            f"Top up the KIE account of key {key.name} before it runs out (an empty account "
            "quarantines the key).",
            warning=True,
        )
    return Check(name, True, detail)


def videos_left(settings: Settings, balance: float) -> str:
    """``about 24 videos of tier standard (41 credits each)``, per tier: the balance over the
    price of the tier's first model (where its videos are made while that model is live)."""
    parts = []
    for tier in video_settings(settings).tiers:
        each = tier.chain[0].credits
        parts.append(f"about {int(balance // each)} videos of tier {tier.name} ({each:g} each)")
    return ", ".join(parts)


def openai_check(settings: Settings, key: ApiKey, *, timeout: float, **_: Any) -> Check:
    name = f"openai key {key.name}"
    model = video_settings(settings).openai_model
    generator = PromptGenerator(
        video_settings(settings).openai_base_url, model=model, timeout=timeout
    )
    try:
        # GET /models: authenticated, free, and it says whether the configured model exists.
        page = generator._client(key).models.list()
        models = {m.id for m in page.data}
    except openai.APIStatusError as exc:
        err = generator._classify(key, exc)
        return provider_failure(name, err, OPENAI.label, OPENAI.keys_variable, key.name)
    except openai.OpenAIError as exc:
        err = ProviderError(
            ErrorClass.TEMPORARY,
            f"models: {type(exc).__name__}",
            provider=PROVIDER,
            key_name=key.name,
        )
        return provider_failure(name, err, OPENAI.label, OPENAI.keys_variable, key.name)
    finally:
        generator.close()
    if models and model not in models:
        return Check(
            name,
            False,
            f"key works, but model {model} is not among its {len(models)} models",
            "Set OPENAI_MODEL to a model this key can use (see GET /v1/models).",
        )
    return Check(name, True, f"authenticated; {len(models)} models, {model} among them")


#: Provider name → the check of one of its keys.
KEY_CHECKS = {KIE.name: kie_check, OPENAI.name: openai_check}

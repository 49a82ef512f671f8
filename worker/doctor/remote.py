"""Checks of what the workers call: a provider's answer to a key check, the Telegram bot, and
each provider callback's route through the operator's proxy to `worker webhooks`."""

from __future__ import annotations

import httpx

from worker.config import Settings
from worker.doctor.check import Check, first_line
from worker.errors import ErrorClass, ProviderError
from worker.kinds import JobKind
from worker.webhooks import Webhook


def provider_failure(name: str, err: ProviderError, what: str, variable: str, key: str) -> Check:
    where = f"HTTP {err.status}" if err.status is not None else "no HTTP answer"
    if err.code and err.code != str(err.status):
        where += f", {err.code}"
    cls = err.error_class
    if cls is ErrorClass.AUTH:
        detail = f"{what} rejected key {key} ({cls}, {where})"
        fix = (
            f"Replace the secret of {key} in {variable} with a valid one, then "
            f"`worker keys enable {key}`."
        )
    elif cls is ErrorClass.BILLING:
        detail = f"the account of key {key} has no credit left ({cls}, {where})"
        fix = f"Top up the {what} account of key {key}, then `worker keys enable {key}`."
    elif cls in (ErrorClass.TEMPORARY, ErrorClass.RATE_LIMIT):
        detail = f"{what} did not answer properly ({cls}, {where}): {err.message[:160]}"
        fix = (
            f"Check the {what} base URL and this host's network, then run doctor again in a minute."
        )
    else:
        detail = f"{what} refused the check ({cls}, {where}): {err.message[:160]}"
        fix = f"Check the {what} base URL and model settings."
    return Check(name, False, detail, fix)


def telegram_check(settings: Settings, *, timeout: float) -> Check:
    from worker.telegram import TelegramNotifier

    notifier = TelegramNotifier(
        settings.telegram_api_url, settings.telegram_bot_token.get_secret_value(), timeout=timeout
    )
    try:
        me = notifier.get_me()
    except ProviderError as err:
        if err.status in (401, 404) or err.error_class is ErrorClass.AUTH:
            return Check(
                "telegram bot",
                False,
                f"Telegram rejected the bot token ({err.message[:120]})",
                "Set TELEGRAM_BOT_TOKEN to the current token from @BotFather (/token).",
            )
        return provider_failure("telegram bot", err, "Telegram", "TELEGRAM_BOT_TOKEN", "token")
    finally:
        notifier.close()
    username = me.get("username") or me.get("first_name") or "?"
    return Check("telegram bot", True, f"getMe answered: @{username} (id {me.get('id', '?')})")


# --- provider callbacks -----------------------------------------------------------------------


def webhook_check(settings: Settings, kind: JobKind, hook: Webhook, *, timeout: float) -> Check:
    """Through the public URL the provider is given, does `worker webhooks` answer? (A GET,
    which the receiver answers with its name: the proxy's routing is what this checks.)"""
    from worker import http as provider_http
    from worker.webhooks import path_of

    name = f"callbacks {kind.name}/{hook.name}"
    url = hook.public_url(settings) or ""
    label = f"{kind.name}/{hook.name}"
    fix = (
        f"Run `worker webhooks` (systemd: worker-webhooks.service, listening on "
        f"{settings.webhook_host}:{settings.webhook_port}) and have your HTTPS proxy send "
        f"{url} to its {path_of(kind, hook)}; or unset {hook.url_variable} to poll only "
        "(jobs then wait for the provider's polling schedule)."
    )
    client = provider_http.client(timeout)
    try:
        response = client.get(url)
        answer = response.json() if response.status_code == 200 else {}
    except (httpx.HTTPError, ValueError) as exc:
        return Check(name, False, f"{url} does not answer: {first_line(exc)}", fix)
    finally:
        client.close()
    if not isinstance(answer, dict) or answer.get("webhook") != label:
        return Check(
            name,
            False,
            f"{url} answered HTTP {response.status_code}, not as `worker webhooks` ({label})",
            fix,
        )
    detail = f"{url} reaches `worker webhooks`"
    if not hook.signed(settings):
        return Check(
            name,
            True,
            detail + "; callbacks are not signed, so anyone who learns the URL can make "
            "jobs poll early",
            f"Set {hook.key_variable} to the webhook HMAC key from the provider's settings page.",
            warning=True,
        )
    return Check(name, True, detail + "; callbacks must be signed")

"""Cross-site request forgery: every POST carries a token another site cannot know.

A signed-in session has its own random token (:class:`worker.dashboard.auth.Session`); each form
holds it in a hidden ``csrf`` field and the page's script sends it as ``X-CSRF-Token``. The
login form, before any session exists, uses a double-submit cookie: a random value in a
SameSite=Strict cookie and the same value in the form. On top of the token, a POST whose
``Origin`` (or, without one, ``Referer``) names another host is refused: a browser always sends
one of them on a cross-site POST.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from aiohttp import web

FIELD = "csrf"
HEADER = "X-CSRF-Token"
LOGIN_COOKIE = "dashboard_login_csrf"


class CsrfRefused(web.HTTPForbidden):
    """A state-changing request without a valid token, or from another site."""

    def __init__(self, reason: str) -> None:
        super().__init__(text=f"refused: {reason}\n")


def same_origin(request: web.Request) -> bool:
    """False when the browser says the request comes from a page of another host."""
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if not source or source == "null":
        return source is None
    try:
        host = urlsplit(source).netloc
    except ValueError:
        return False
    return host == request.host


def submitted_token(request: web.Request, form: dict[str, str]) -> str:
    return request.headers.get(HEADER) or form.get(FIELD) or ""


def check(request: web.Request, form: dict[str, str], expected: str) -> None:
    """Raise :class:`CsrfRefused` unless the request is same-origin and carries ``expected``."""
    if not same_origin(request):
        raise CsrfRefused("this request comes from another site")
    token = submitted_token(request, form)
    if not token or not expected or not hmac.compare_digest(token, expected):
        raise CsrfRefused("missing or wrong CSRF token; reload the page and try again")

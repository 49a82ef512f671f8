"""`worker dashboard`: a web page an operator can leave open, or hand to support.

One concept per module: :mod:`~worker.dashboard.app` (the aiohttp application, middleware,
lifetime), :mod:`~worker.dashboard.auth` (users, roles, password hashes, sessions),
:mod:`~worker.dashboard.csrf`, :mod:`~worker.dashboard.queries` (what pages read),
:mod:`~worker.dashboard.live` (server-sent events), :mod:`~worker.dashboard.views` (pages and
actions), ``templates/`` (Jinja2) and ``static/`` (one stylesheet, one small script).
"""

#: Where `worker dashboard` listens unless told otherwise: this machine only.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8089

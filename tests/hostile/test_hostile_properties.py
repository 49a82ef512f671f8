"""Property-based hostile input at every boundary (issue 22): client submit, the report upload
and analysis, the webhook receiver, the result download and the CLI printers.

Each property throws generated values (text with lone surrogates, controls, bidi overrides,
Rich markup, huge and non-finite numbers, wrong types, binary files, forged URLs) and checks
the same three promises: no unhandled exception (only the boundary's typed refusal), no state
change on a refusal (jobs, requests and ledger rows as before), and no secret in any output.

Deterministic (``derandomize``: the same examples every run, CI included) and bounded
(``max_examples``) so the whole file takes well under a minute.
"""

from __future__ import annotations

import io
import json
import logging
import string
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from jobs.report.analyse import analyse_file
from jobs.report.parse import ReportError
from jobs.report.render import render_html
from tests.conftest import PRODUCT, RunningWebhooks
from worker.cli import output
from worker.cli.main import cli
from worker.client import Client, RequestRefused
from worker.config import Settings, load_settings
from worker.db import Database
from worker.errors import ProviderError
from worker.redaction import register_secrets
from worker.storage import DownloadPolicy, Storage

BOT_TOKEN = "987654321:AAH-hostile-property-token_0123456789ab"
HMAC_KEY = "whk-hostile-property-0123456789"
SECRETS = (BOT_TOKEN, HMAC_KEY, BOT_TOKEN.split(":")[1])

PROPERTY = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --- strategies ----------------------------------------------------------------------------------

#: Characters an attacker or a careless provider sends: controls, C1, surrogates, bidi,
#: zero-width, Rich markup, quotes and delimiters, NUL.
NASTY_CHARS = st.sampled_from(
    [
        *"\x00\x07\x1b\x7f\x85\x9b\u200b\u200d\u202e\u2066\ufeff\ud800\udfff[]/\\\"';,|\t\n\r",
        "[/bold]",
        "[link=file:///etc/passwd]",
        "%3A",
        "²",
        "١",
        "\U0001f600",
    ]
)
NASTY_TEXT = st.lists(
    st.one_of(NASTY_CHARS, st.text(max_size=8), st.sampled_from(string.ascii_letters)),
    max_size=30,
).map("".join)
ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    NASTY_TEXT,
    st.text(min_size=2000, max_size=2100),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


def _no_secret(*texts: object) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in str(text), f"a secret in {text!r}"


@pytest.fixture
def hostile_settings(settings: Settings) -> Settings:
    s = load_settings(
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        redis_namespace=settings.redis_namespace,
        storage_dir=str(settings.storage_dir),
        telegram_bot_token=BOT_TOKEN,
        kie_webhook_hmac_key=HMAC_KEY,
        _env_file=None,
    )
    register_secrets(SECRETS)
    return s


@pytest.fixture
def hostile_client(hostile_settings: Settings, db: Database) -> Iterator[Client]:
    c = Client(hostile_settings, db=db)
    yield c
    c.close()


def _state(db: Database) -> tuple[Any, ...]:
    row = db.fetchone(
        "SELECT (SELECT count(*) FROM jobs) j, (SELECT count(*) FROM requests) r,"
        " (SELECT count(*) FROM transfers) t, (SELECT count(*) FROM job_events) e,"
        " (SELECT coalesce(sum(amount), 0) FROM transfers) a"
    )
    assert row is not None
    return tuple(row.values())


# --- client submit -------------------------------------------------------------------------------


@PROPERTY
@given(
    title=st.one_of(NASTY_TEXT, ANY_VALUE),
    description=st.one_of(NASTY_TEXT, ANY_VALUE),
    image_url=st.one_of(
        NASTY_TEXT.map(lambda t: "https://example.test/" + t), NASTY_TEXT, ANY_VALUE
    ),
    user_id=st.one_of(st.integers(min_value=-(2**64), max_value=2**64), ANY_VALUE),
    count=st.one_of(st.sampled_from([1, 3, 5]), ANY_VALUE),
    key=st.one_of(st.none(), NASTY_TEXT),
)
def test_submit_refuses_cleanly_and_changes_nothing(
    hostile_client: Client,
    db: Database,
    title: Any,
    description: Any,
    image_url: Any,
    user_id: Any,
    count: Any,
    key: Any,
) -> None:
    before = _state(db)
    product = {"title": title, "description": description, "image_url": image_url}
    try:
        hostile_client.submit_video(
            user_id=user_id, product=product, count=count, idempotency_key=key
        )
    except RequestRefused as exc:  # InvalidRequest, InsufficientCredits
        assert _state(db) == before
        _no_secret(exc)
    # A success needs credits: none were granted, so every submit is refused.
    assert _state(db) == before


# --- `worker report`: the upload and the analysis ------------------------------------------------

CSV_ROWS = st.lists(
    st.lists(
        st.one_of(
            NASTY_TEXT,
            st.sampled_from(["2024-03-01", "9999-12-31", "0001-01-01", "31.12.2099", "03/04/2024"]),
            st.sampled_from(
                ["1.50", "1e30", "1" + "0" * 40, "-0,5", "(3)", "nan", "inf", "$1,234.5"]
            ),
        ),
        min_size=1,
        max_size=6,
    ),
    max_size=12,
)
CSV_BYTES = st.one_of(
    CSV_ROWS.map(
        lambda rows: (
            "Date,Title,Content Type,Earnings\r\n" + "".join(",".join(r) + "\r\n" for r in rows)
        )
    ).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.binary(max_size=400),
    st.sampled_from(
        [
            b"root:$6$x$y:19000:0:99999:7:::\n",
            b'Date,Earnings\r\n"' + b"x\n" * 300 + b'",1\r\n',
            b"Date,Earnings," + b"x," * 5000 + b"\r\n2024-01-01,1\r\n",
        ]
    ),
)


@PROPERTY
@given(data=CSV_BYTES, period=st.one_of(st.sampled_from(["7d", "all"]), ANY_VALUE))
def test_report_upload_and_analysis_refuse_cleanly(
    hostile_client: Client,
    db: Database,
    tmp_path: Path,
    data: bytes,
    period: Any,
) -> None:
    path = tmp_path / "upload.csv"
    path.write_bytes(data)
    before = _state(db)
    try:
        result = hostile_client.submit_report(7, None, path, period=period)
    except RequestRefused as exc:
        assert _state(db) == before
        _no_secret(exc)
        return
    assert result.job_ids  # reports are free by default: a job was made
    try:
        payload = hostile_client.job(result.job_ids[0])["payload"]
        report = analyse_file(path, file_name="upload.csv", period=payload["period"])
    except ReportError as exc:
        assert exc.line is None or exc.line >= 1
        _no_secret(exc)
        return
    html = render_html(report)
    assert len(html) < 2_000_000
    _no_secret(html)


# --- the webhook receiver ------------------------------------------------------------------------


@pytest.fixture
def receiver(hostile_settings: Settings) -> Iterator[RunningWebhooks]:
    running = RunningWebhooks(hostile_settings)
    yield running
    running.stop()


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.floats(), st.integers(), NASTY_TEXT),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(NASTY_TEXT, inner, max_size=3)
    ),
    max_leaves=10,
)


@PROPERTY
@given(
    job=st.one_of(NASTY_TEXT, st.integers(min_value=-(2**70), max_value=2**70).map(str)),
    body=st.one_of(
        st.builds(
            lambda task, state, extra: {
                "code": 200,
                "data": {"taskId": task, "state": state},
                **extra,
            },
            st.one_of(NASTY_TEXT, JSON_VALUES),
            st.one_of(NASTY_TEXT, JSON_VALUES),
            st.dictionaries(st.text(max_size=4), JSON_VALUES, max_size=2),
        ),
        JSON_VALUES,
    ),
    raw=st.one_of(st.none(), st.binary(max_size=200)),
    stamp=st.one_of(st.none(), st.sampled_from(["nan", "inf", "-1e999", "0", "1e20"]), NASTY_TEXT),
    signature=st.one_of(st.none(), NASTY_TEXT),
)
def test_the_receiver_answers_every_request_and_changes_nothing(
    receiver: RunningWebhooks,
    db: Database,
    caplog: pytest.LogCaptureFixture,
    job: str,
    body: Any,
    raw: bytes | None,
    stamp: str | None,
    signature: str | None,
) -> None:
    before = _state(db)
    content = raw if raw is not None else json.dumps(body, ensure_ascii=True).encode()
    headers = {"content-type": b"application/json"}
    if stamp is not None:
        headers["X-Webhook-Timestamp"] = stamp.encode("utf-8", "replace")
    if signature is not None:
        headers["X-Webhook-Signature"] = signature.encode("utf-8", "replace")
    try:
        answer = httpx.post(
            f"{receiver.url}/callbacks/video/kie",
            params={"job": job.encode("utf-8", "surrogatepass").decode("utf-8", "replace")},
            content=content,
            headers=headers,
            timeout=10,
        )
    except httpx.LocalProtocolError:
        return  # httpx itself refuses to send this header
    assert answer.status_code in (200, 400, 401), answer.text
    assert "Traceback" not in answer.text
    if answer.headers.get("content-type", "").startswith("application/json"):
        assert answer.json()["ok"] is (answer.status_code == 200)
    else:  # not valid HTTP (a control character in a header): aiohttp's own plain 400
        assert answer.status_code == 400
    _no_secret(answer.text)
    assert _state(db) == before  # no job exists: nothing to wake, nothing written
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


# --- the result download -------------------------------------------------------------------------


class _Hostile(BaseHTTPRequestHandler):
    """Answers with whatever the test put in ``server.answer``: status, headers, body."""

    def do_GET(self) -> None:
        status, headers, body = self.server.answer  # type: ignore[attr-defined]
        self.server.hits += 1  # type: ignore[attr-defined]
        try:
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hostile_server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    httpd.daemon_threads = True
    httpd.hits = 0  # type: ignore[attr-defined]
    httpd.answer = (200, [], b"")  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40)


@PROPERTY
@given(
    status=st.sampled_from([200, 200, 206, 301, 302, 307, 404, 500]),
    ctype=st.one_of(st.just("video/mp4"), HEADER_TEXT),
    length=st.one_of(st.none(), HEADER_TEXT, st.integers(min_value=-5, max_value=10**12).map(str)),
    location=st.one_of(
        st.none(),
        HEADER_TEXT,
        st.sampled_from(
            [
                "http://169.254.169.254/latest/",
                "http://localhost/admin",
                "file:///etc/passwd",
                "//10.0.0.1/x",
                "https://[::1]/x",
                "/again",
            ]
        ),
    ),
    body=st.binary(max_size=300),
)
def test_the_download_only_raises_provider_errors(
    hostile_server: ThreadingHTTPServer,
    tmp_path: Path,
    status: int,
    ctype: str,
    length: str | None,
    location: str | None,
    body: bytes,
) -> None:
    headers = [("Content-Type", ctype)]
    if length is not None:
        headers.append(("Content-Length", length))
    if location is not None:
        headers.append(("Location", location))
    hostile_server.answer = (status, headers, body)  # type: ignore[attr-defined]
    port = hostile_server.server_address[1]
    policy = DownloadPolicy(
        allowed_hosts=frozenset({"127.0.0.1"}), allow_http=True, budget_seconds=5.0
    )
    storage = Storage(tmp_path, timeout=2.0, policy=policy)
    dest = tmp_path / "v" / "1.mp4"
    dest.unlink(missing_ok=True)  # tmp_path is shared by the examples
    try:
        stored = storage.download(
            f"http://127.0.0.1:{port}/r.mp4",
            dest,
            provider="kie",
            max_bytes=1000,
            content_types=("video/mp4",),
            looks_right=lambda head: bool(head),
        )
    except ProviderError as exc:
        _no_secret(exc.message)
        assert not dest.exists()
        return
    assert stored.size == dest.stat().st_size <= 1000


@PROPERTY
@given(
    url=st.one_of(
        NASTY_TEXT,
        st.builds(
            lambda scheme, host, rest: f"{scheme}://{host}{rest}",
            st.sampled_from(["http", "https", "ftp", "file", "gopher", "HTTPS", ""]),
            st.sampled_from(
                [
                    "127.0.0.1",
                    "127.1",
                    "0x7f000001",
                    "2130706433",
                    "localhost",
                    "[::1]",
                    "[::ffff:7f00:1]",
                    "169.254.169.254",
                    "10.1.2.3",
                    "user:pass@127.0.0.1",
                    "127.0.0.1.nip.io.invalid",
                    "",
                ]
            ),
            NASTY_TEXT.map(lambda t: "/" + t),
        ),
    )
)
def test_default_downloads_never_reach_a_private_address(
    hostile_server: ThreadingHTTPServer, tmp_path: Path, url: str
) -> None:
    port = hostile_server.server_address[1]
    target = url.replace("127.0.0.1", f"127.0.0.1:{port}", 1) if "://127.0.0.1" in url else url
    with pytest.raises(ProviderError):
        Storage(tmp_path, timeout=2.0).download(
            target,
            tmp_path / "x.mp4",
            provider="kie",
            max_bytes=1000,
            content_types=("video/mp4",),
            looks_right=lambda head: True,
        )
    assert hostile_server.hits == 0  # type: ignore[attr-defined]


# --- the CLI printers ----------------------------------------------------------------------------


@PROPERTY
@given(cells=st.lists(st.one_of(NASTY_TEXT, ANY_VALUE), min_size=1, max_size=5))
def test_the_printers_print_any_text_literally(cells: list[Any]) -> None:
    buffer = io.StringIO()
    saved = output.console
    output.console = Console(file=buffer, width=400, highlight=False, soft_wrap=True)
    try:
        output.table("t [/bold]", [f"c{i}" for i in range(len(cells))], [cells])
        for cell in cells:
            output.field("[red]name", cell)
    finally:
        output.console = saved
    printed = _visible(buffer.getvalue())
    assert "t[/bold]" in printed  # the title, as written
    for cell in cells:  # each field() line holds its value whole (soft_wrap: no folding)
        assert "[red]name" + _visible("" if cell is None else str(cell)) in printed


def _visible(text: str) -> str:
    """What a terminal shows of ``text``, give or take spacing and control characters."""
    return "".join(
        c for c in text if c.isprintable() and not c.isspace() and not 0xD800 <= ord(c) <= 0xDFFF
    )


@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(error=NASTY_TEXT, detail=NASTY_TEXT)
def test_jobs_show_and_ls_never_crash_on_stored_text(
    hostile_settings: Settings,
    hostile_client: Client,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
    error: str,
    detail: str,
) -> None:
    error = error.encode("utf-8", "replace").decode().replace("\x00", "")
    detail = detail.encode("utf-8", "replace").decode().replace("\x00", "")
    monkeypatch.setenv("DATABASE_URL", hostile_settings.database_url)
    monkeypatch.setenv("REDIS_URL", hostile_settings.redis_url)
    monkeypatch.setenv("REDIS_NAMESPACE", hostile_settings.redis_namespace)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.chdir(hostile_settings.storage_dir)
    hostile_client.grant(7, 1)
    job = hostile_client.submit_video(user_id=7, product=PRODUCT).job_ids[0]
    db.fetchone("UPDATE jobs SET error = %s WHERE id = %s RETURNING id", (error, job))
    db.fetchone(
        "INSERT INTO job_events (job_id, event, detail) VALUES (%s, 'x', %s) RETURNING id",
        (job, detail),
    )
    for args in (["jobs", "ls"], ["jobs", "show", str(job)], ["jobs", "show", str(job), "--json"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, (args, result.output, result.exception)
        _no_secret(result.output)

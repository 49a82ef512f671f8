"""The result download under hostile URLs and servers (issue 22, finding 1): loopback, private,
link-local and metadata addresses are refused at every redirect hop after DNS; http only when
allowed; RESULT_HOSTS may reach private addresses; a slow server is cut off by the wall-clock
budget and the minimum rate; the >50 MB raw link is checked the same way."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from worker.config import Settings, load_settings
from worker.errors import ErrorClass, ProviderError
from worker.storage import DownloadPolicy, ResultRefused, Storage, is_public

MP4 = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 4000
LOCAL = frozenset({"127.0.0.1"})


class Server:
    """A plain HTTP server on loopback: ``routes`` maps a path to a handler."""

    def __init__(self) -> None:
        self.routes: dict[str, Callable[[BaseHTTPRequestHandler], None]] = {}
        self.hits: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits.append(self.path)
                route = outer.routes.get(self.path.split("?")[0])
                if route is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    route(self)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _video(h: BaseHTTPRequestHandler) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "video/mp4")
    h.send_header("Content-Length", str(len(MP4)))
    h.end_headers()
    h.wfile.write(MP4)


def _redirect(to: str) -> Callable[[BaseHTTPRequestHandler], None]:
    def go(h: BaseHTTPRequestHandler) -> None:
        h.send_response(302)
        h.send_header("Location", to)
        h.send_header("Content-Length", "0")
        h.end_headers()

    return go


def _dribble(h: BaseHTTPRequestHandler) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "video/mp4")
    h.send_header("Content-Length", str(len(MP4)))
    h.end_headers()
    for byte in MP4:
        h.wfile.write(bytes([byte]))
        h.wfile.flush()
        time.sleep(0.5)


def _stall(h: BaseHTTPRequestHandler) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "video/mp4")
    h.send_header("Content-Length", str(len(MP4)))
    h.end_headers()
    h.wfile.write(MP4[:100])
    h.wfile.flush()
    time.sleep(30)


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    s.routes["/video.mp4"] = _video
    s.routes["/internal-admin/secrets"] = _video
    yield s
    s.close()


def _get(storage: Storage, url: str, tmp_path: Path) -> Path:
    dest = tmp_path / "out" / "1.mp4"
    storage.download(
        url,
        dest,
        provider="kie",
        max_bytes=10_000_000,
        content_types=("video/mp4",),
        looks_right=lambda head: head[4:8] == b"ftyp",
    )
    return dest


def test_the_default_storage_refuses_loopback_and_plain_http(
    server: Server, tmp_path: Path
) -> None:
    storage = Storage(tmp_path)  # what a worker without RESULT_* settings gets
    with pytest.raises(ProviderError) as err:
        _get(storage, server.url("/video.mp4"), tmp_path)
    assert err.value.error_class is ErrorClass.USER_ERROR
    assert server.hits == []
    assert not (tmp_path / "out" / "1.mp4").exists()


def test_a_redirect_to_loopback_is_refused_after_dns(server: Server, tmp_path: Path) -> None:
    # The first host is allowed by name; the redirect names `localhost`, which is not, and
    # resolves to 127.0.0.1.
    server.routes["/start"] = _redirect(server.url("/internal-admin/secrets", host="localhost"))
    storage = Storage(tmp_path, policy=DownloadPolicy(allowed_hosts=LOCAL, allow_http=True))
    with pytest.raises(ResultRefused) as err:
        _get(storage, server.url("/start"), tmp_path)
    assert "localhost" in err.value.message and "not a public address" in err.value.message
    assert server.hits == ["/start"]  # the internal page was never fetched
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:1/x",
        "http://10.0.0.1/x",
        "http://192.168.1.1/x",
        "http://100.64.0.1/x",
        "http://0.0.0.0:1/x",
        "http://[::ffff:127.0.0.1]:1/x",
        "file:///etc/passwd",
        "ftp://example.com/x",
    ],
)
def test_redirects_to_internal_addresses_are_refused(
    server: Server, tmp_path: Path, target: str
) -> None:
    server.routes["/start"] = _redirect(target)
    storage = Storage(tmp_path, policy=DownloadPolicy(allowed_hosts=LOCAL, allow_http=True))
    with pytest.raises(ResultRefused):
        _get(storage, server.url("/start"), tmp_path)


def test_an_allowed_host_downloads_and_follows_a_redirect_to_itself(
    server: Server, tmp_path: Path
) -> None:
    server.routes["/start"] = _redirect("/video.mp4")
    storage = Storage(tmp_path, policy=DownloadPolicy(allowed_hosts=LOCAL, allow_http=True))
    assert _get(storage, server.url("/start"), tmp_path).read_bytes() == MP4


def test_http_needs_allow_http_even_for_an_allowed_host(server: Server, tmp_path: Path) -> None:
    storage = Storage(tmp_path, policy=DownloadPolicy(allowed_hosts=LOCAL))
    with pytest.raises(ResultRefused) as err:
        _get(storage, server.url("/video.mp4"), tmp_path)
    assert "only https" in err.value.message
    assert server.hits == []


def test_a_server_sending_a_byte_at_a_time_is_cut_off(server: Server, tmp_path: Path) -> None:
    server.routes["/slow.mp4"] = _dribble
    policy = DownloadPolicy(
        allowed_hosts=LOCAL,
        allow_http=True,
        budget_seconds=3.0,
        min_bytes_per_second=1000,
        grace_seconds=1.0,
    )
    storage = Storage(tmp_path, timeout=5.0, policy=policy)
    started = time.monotonic()
    with pytest.raises(ProviderError) as err:
        _get(storage, server.url("/slow.mp4"), tmp_path)
    assert time.monotonic() - started < 2.5  # the rate, not the 3 s budget, nor 5 s per read
    assert err.value.error_class is ErrorClass.TEMPORARY
    assert "too slow" in err.value.message


def test_the_wall_clock_budget_bounds_a_stalled_download(server: Server, tmp_path: Path) -> None:
    server.routes["/stall.mp4"] = _stall
    policy = DownloadPolicy(
        allowed_hosts=LOCAL, allow_http=True, budget_seconds=2.0, min_bytes_per_second=0
    )
    storage = Storage(tmp_path, timeout=60.0, policy=policy)
    started = time.monotonic()
    with pytest.raises(ProviderError) as err:
        _get(storage, server.url("/stall.mp4"), tmp_path)
    assert time.monotonic() - started < 3.0
    assert "budget" in err.value.message


def test_settings_build_the_policy(settings: Settings) -> None:
    s = load_settings(
        database_url=settings.database_url,
        result_hosts=" CDN.example.com., 127.0.0.1 ",
        result_allow_http=True,
        result_download_seconds=60,
        result_min_bytes_per_second=1000,
        _env_file=None,
    )
    policy = DownloadPolicy.from_settings(s)
    assert policy.allowed_hosts == {"cdn.example.com", "127.0.0.1"}
    assert (policy.allow_http, policy.budget_seconds, policy.min_bytes_per_second) == (
        True,
        60,
        1000,
    )
    default = DownloadPolicy.from_settings(settings)
    assert default.allowed_hosts == frozenset() and default.allow_http is False


def test_the_raw_link_is_checked_like_the_download(tmp_path: Path) -> None:
    strict = Storage(tmp_path)
    assert strict.safe_link("http://127.0.0.1:9/v.mp4", provider="kie") is None
    assert strict.safe_link("https://169.254.169.254/v.mp4", provider="kie") is None
    assert strict.safe_link("https://localhost/v.mp4", provider="kie") is None
    assert strict.safe_link("https://93.184.215.14/v.mp4", provider="kie") is not None
    sim = Storage(tmp_path, policy=DownloadPolicy(allowed_hosts=LOCAL, allow_http=True))
    assert sim.safe_link("http://127.0.0.1:9/v.mp4", provider="kie") is not None


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True),
        ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", True),
        ("127.0.0.1", False),
        ("169.254.169.254", False),
        ("fd00:ec2::254", False),
        ("::ffff:10.0.0.1", False),
        ("100.100.100.200", False),
        ("224.0.0.1", False),
        ("fe80::1%eth0", False),
        ("not-an-ip", False),
    ],
)
def test_public_addresses(address: str, public: bool) -> None:
    assert is_public(address) is public

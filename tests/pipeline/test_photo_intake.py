"""Photo intake end to end: a Telegram photo by ``file_id`` → Bot API download → Pillow checks →
KIE File Upload API → a prompt that sees the photo → createTask with the upload's URL; and every
refusal of a photo fails as a USER_ERROR with a refund before KIE is asked for a video.

Real PostgreSQL, Redis, Dramatiq workers and the simulator (its Telegram file store, its KIE
upload store, its OpenAI that looks at the photo); the photos are made with Pillow here.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from tests.pipeline.conftest import BOT_TOKEN, KIE_KEYS, Pipeline, wait_for
from worker.errors import ErrorClass, ProviderError
from worker.telegram import TelegramNotifier

TOKEN_SECRET = BOT_TOKEN.split(":", 1)[1]
RED = (220, 20, 20)
BLUE = (30, 60, 210)


def image_bytes(
    size: tuple[int, int] = (640, 480),
    colour: tuple[int, int, int] = RED,
    fmt: str = "JPEG",
    **save: Any,
) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, fmt, **save)
    return out.getvalue()


def add_photo(p: Pipeline, data: bytes) -> str:
    """The user sends a photo: it lands in the simulator's Telegram file store."""
    answer = httpx.post(f"{p.sim.url}/_sim/telegram/files", content=data, timeout=30)
    answer.raise_for_status()
    return str(answer.json()["file_id"])


def uploads(p: Pipeline) -> list[dict[str, Any]]:
    return list(httpx.get(f"{p.sim.url}/_sim/kie/uploads").json()["uploads"])


def creates(p: Pipeline) -> list[dict[str, Any]]:
    return list(httpx.get(f"{p.sim.url}/_sim/kie/creates").json()["creates"])


def openai_requests(p: Pipeline) -> list[dict[str, Any]]:
    return list(httpx.get(f"{p.sim.url}/_sim/openai/requests").json()["requests"])


def create_calls(p: Pipeline) -> int:
    return len(p.sim.calls(service="kie", endpoint="createTask"))


def submit_photo(p: Pipeline, user: int, file_id: str, *, credits: int = 1, **extra: Any) -> int:
    p.client.grant(user, credits)
    product = {"title": "Ceramic mug", "photo_file_id": file_id, **extra}
    (job,) = p.client.submit_video(user_id=user, chat_id=user, product=product).job_ids
    return job


def image_of(content: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(content))
    image.load()
    return image


def fetch(url: str) -> bytes:
    answer = httpx.get(url)
    answer.raise_for_status()
    return answer.content


@pytest.fixture
def photos(pipeline: Pipeline) -> Iterator[Pipeline]:
    """The pipeline with KIE's upload host at the simulator."""
    pipeline.reconfigure(kie_upload_url=pipeline.sim.url)
    yield pipeline


# --- the whole way, and no bot token anywhere ---------------------------------------------------


def _everything_recorded(p: Pipeline) -> dict[str, Any]:
    """What the simulator recorded: every call (a Telegram call's ``key`` is the bot's own
    token, the path it authenticates with, as is the file download), every task, create body,
    upload, OpenAI request and Telegram message."""
    calls = []
    for call in p.sim.calls():
        if call["service"].startswith("telegram"):
            call = {k: v for k, v in call.items() if k != "key"}
        calls.append(call)
    return {
        "calls": calls,
        "tasks": p.sim.tasks(),
        "creates": creates(p),
        "uploads": uploads(p),
        "openai": openai_requests(p),
        "messages": p.sim.messages(),
        "callbacks": p.sim.callbacks(),
    }


def _every_row(p: Pipeline) -> list[str]:
    tables = p.db.fetchall("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    rows: list[str] = []
    for table in tables:
        name = table["tablename"].replace('"', '""')
        found = p.db.fetchall(f'SELECT row_to_json(t)::text AS row FROM "{name}" t')
        rows += [r["row"] for r in found]
    return rows


def test_a_photo_by_file_id_goes_to_kie_as_an_upload_and_the_bot_token_goes_nowhere(
    photos: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    p = photos
    file_id = add_photo(p, image_bytes((800, 600), RED))
    proc = p.start_process(threads=2)
    job = submit_photo(p, 501, file_id)
    (view,) = p.wait([job], timeout=60)
    assert (view["status"], view["credits"]) == ("succeeded", "captured"), view
    events = [e["event"] for e in view["events"]]
    assert events[:4] == ["submitted", "photo uploaded", "prompt written", "task created"]

    # The photo was uploaded once, with a key of the KIE pool, and createTask got its URL.
    (upload,) = uploads(p)
    assert upload["key"] in {pair.split("=")[1] for pair in KIE_KEYS.split(",")}
    assert (upload["mime_type"], upload["upload_path"]) == ("image/jpeg", "product-photos")
    (create,) = creates(p)
    assert upload["download_url"] in json.dumps(create["body"])
    assert image_of(fetch(upload["download_url"])).size == (800, 600)
    # The prompt saw the photo: OpenAI got the upload's URL, and the prompt names its colour.
    (asked,) = openai_requests(p)
    assert asked["images"] == [upload["download_url"]]
    (task,) = p.sim.tasks()
    assert "a red product" in task["prompt"]
    assert [m["method"] for m in p.messages(501)] == ["sendVideo"]

    # No bot token: not at KIE, OpenAI or in Telegram's payloads, not in any row, not in a log.
    p.stop()
    assert proc.returncode is not None
    recorded = json.dumps(_everything_recorded(p), ensure_ascii=False)
    assert "/file/bot" not in recorded
    rows = _every_row(p)
    assert any(str(job) in r for r in rows) and any("photo uploaded" in r for r in rows)
    logs = [
        *(Path(p.settings.storage_dir) / "worker-0.log").read_text().splitlines(),
        *(r.getMessage() for r in caplog.records),
    ]
    assert any("photo uploaded" in line or "video" in line for line in logs), logs[:20]
    for where, text in (("recorded", recorded), *(("row", r) for r in rows)):
        assert TOKEN_SECRET not in text, where
    for line in logs:
        assert TOKEN_SECRET not in line, line
    assert p.ledger_ok()


# --- every refusal: USER_ERROR, plain words, a refund, no createTask -----------------------------


def _truncated_jpeg() -> bytes:
    whole = io.BytesIO()
    Image.effect_noise((800, 600), 64).convert("RGB").save(whole, "JPEG", quality=95)
    return whole.getvalue()[: whole.tell() // 2]


REFUSALS: dict[str, tuple[Callable[[], bytes], str]] = {
    "too small": (lambda: image_bytes((200, 200)), "too small"),
    "too large": (lambda: os.urandom(21 * 1024 * 1024), "too large"),
    "a GIF": (lambda: image_bytes((640, 480), fmt="GIF"), "not a supported photo"),
    "a text file": (lambda: b"just some words, not a photo\n" * 40, "not a supported photo"),
    "undecodable": (_truncated_jpeg, "could not be read"),
    "extreme aspect": (lambda: image_bytes((900, 300)), "too long and narrow"),
    "an unknown file_id": (lambda: b"", "could not be fetched from Telegram"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_photo_that_cannot_be_used_fails_with_a_refund_before_kie(
    photos: Pipeline, case: str
) -> None:
    p = photos
    make, words = REFUSALS[case]
    data = make()
    file_id = add_photo(p, data) if data else "AgACunknownFileId_123"
    p.start_worker(threads=2)
    user = 600 + list(REFUSALS).index(case)
    job = submit_photo(p, user, file_id, credits=3)
    (view,) = p.wait([job], timeout=30)
    assert (view["status"], view["error_class"], view["credits"]) == (
        "failed",
        ErrorClass.USER_ERROR,
        "refunded",
    ), view
    assert p.client.balance(user).available == 3
    assert create_calls(p) == 0 and uploads(p) == [] and openai_requests(p) == []
    (message,) = p.messages(user)
    assert words in message["text"], message["text"]
    assert "Your 1 credit was refunded" in message["text"]
    assert p.ledger_ok()


def test_the_refusal_is_told_in_the_users_language(photos: Pipeline) -> None:
    p = photos
    file_id = add_photo(p, image_bytes((200, 200)))
    p.start_worker(threads=2)
    job = submit_photo(p, 650, file_id, language="ru")
    p.wait([job], timeout=30)
    (message,) = p.messages(650)
    assert "Фото слишком маленькое" in message["text"], message["text"]


# --- what is sent to KIE ------------------------------------------------------------------------


def test_a_webp_is_converted_and_uploaded_as_jpeg(photos: Pipeline) -> None:
    p = photos
    file_id = add_photo(p, image_bytes((700, 500), BLUE, fmt="WEBP"))
    p.start_worker(threads=2)
    (view,) = p.wait([submit_photo(p, 701, file_id)], timeout=60)
    assert view["status"] == "succeeded", view
    (upload,) = uploads(p)
    assert upload["mime_type"] == "image/jpeg" and upload["file_name"].endswith(".jpg")
    uploaded = image_of(fetch(upload["download_url"]))
    assert (uploaded.format, uploaded.size) == ("JPEG", (700, 500))
    (task,) = p.sim.tasks()
    assert "a blue product" in task["prompt"]


def test_an_exif_rotated_jpeg_is_uploaded_upright(photos: Pipeline) -> None:
    p = photos
    # Stored 600 wide and 400 high with orientation 6: a camera held upright, 400x600 to see.
    stored = Image.new("RGB", (600, 400), RED)
    stored.paste(BLUE, (0, 0, 300, 400))  # the left half of what is stored: the top, seen
    exif = Image.Exif()
    exif[0x0112] = 6
    raw = io.BytesIO()
    stored.save(raw, "JPEG", exif=exif.tobytes())
    p.start_worker(threads=2)
    (view,) = p.wait([submit_photo(p, 702, add_photo(p, raw.getvalue()))], timeout=60)
    assert view["status"] == "succeeded", view
    (upload,) = uploads(p)
    uploaded = image_of(fetch(upload["download_url"]))
    assert uploaded.size == (400, 600)
    assert uploaded.getexif().get(0x0112, 1) == 1
    top, bottom = uploaded.getpixel((200, 50)), uploaded.getpixel((200, 550))
    assert isinstance(top, tuple) and isinstance(bottom, tuple)
    assert top[2] > 150 > top[0] and bottom[0] > 150 > bottom[2]  # blue on top, red below


# --- the prompt sees the photo ------------------------------------------------------------------


def test_without_vision_no_image_goes_to_openai(photos: Pipeline) -> None:
    p = photos
    p.reconfigure(openai_vision=False)
    p.start_worker(threads=2)
    (view,) = p.wait([submit_photo(p, 801, add_photo(p, image_bytes()))], timeout=60)
    assert view["status"] == "succeeded", view
    (asked,) = openai_requests(p)
    assert asked["images"] == []
    (task,) = p.sim.tasks()
    assert "product, as in the photo" not in task["prompt"]
    (upload,) = uploads(p)  # KIE still gets the uploaded photo
    assert upload["download_url"] in json.dumps(creates(p)[0]["body"])


def test_a_photo_refused_by_the_prompt_model_is_a_user_error(photos: Pipeline) -> None:
    p = photos
    meta = PngInfo()
    meta.add_text("note", "REFUSE-IMAGE")  # the simulated OpenAI refuses an image with this
    file_id = add_photo(p, image_bytes((500, 500), fmt="PNG", pnginfo=meta))
    p.start_worker(threads=2)
    (view,) = p.wait([submit_photo(p, 802, file_id, credits=2)], timeout=30)
    assert (view["status"], view["error_class"], view["credits"]) == (
        "failed",
        ErrorClass.USER_ERROR,
        "refunded",
    ), view
    assert p.client.balance(802).available == 2
    assert create_calls(p) == 0
    (message,) = p.messages(802)
    assert "photo or description was refused" in message["text"], message["text"]


# --- "make another" ---------------------------------------------------------------------------


def test_a_clone_reuses_a_fresh_upload_and_uploads_an_expired_one_again(photos: Pipeline) -> None:
    p = photos
    p.start_worker(threads=2)
    original = submit_photo(p, 901, add_photo(p, image_bytes()), credits=3)
    p.wait([original], timeout=60)
    (first,) = uploads(p)

    (fresh,) = p.client.clone(original, user_id=901).job_ids
    (view,) = p.wait([fresh], timeout=60)
    assert view["status"] == "succeeded" and "photo reused" in p.events(fresh)
    assert len(uploads(p)) == 1
    assert first["download_url"] in json.dumps(creates(p)[-1]["body"])

    # KIE drops uploads after 24 h: the original's is about to go, the clone's too.
    p.db.fetchone(
        "UPDATE jobs SET state = state || jsonb_build_object('kie_image_expires_at', "
        "extract(epoch FROM now()) + 30) WHERE id = ANY(%s) RETURNING id",
        ([original, fresh],),
    )
    (again,) = p.client.clone(fresh, user_id=901).job_ids
    (view,) = p.wait([again], timeout=60)
    assert view["status"] == "succeeded" and "photo uploaded" in p.events(again)
    _, second = uploads(p)
    assert second["download_url"] != first["download_url"]
    assert second["download_url"] in json.dumps(creates(p)[-1]["body"])
    job = p.db.fetchone("SELECT payload FROM jobs WHERE id = %s", (again,))
    assert job is not None and job["payload"]["photo_file_id"]
    assert p.client.balance(901).available == 0


# --- VIDEO_REHOST_IMAGES ------------------------------------------------------------------------


def test_a_rehosted_link_that_cannot_be_fetched_fails_before_kie(photos: Pipeline) -> None:
    p = photos
    p.reconfigure(video_rehost_images=True)
    p.start_worker(threads=2)
    (job,) = p.submit(1001, credits=1, chat_id=1001, image_url="http://127.0.0.1:9/p.jpg")
    (view,) = p.wait([job], timeout=30)
    assert (view["status"], view["error_class"], view["credits"]) == (
        "failed",
        ErrorClass.USER_ERROR,
        "refunded",
    ), view
    assert create_calls(p) == 0 and openai_requests(p) == []
    (message,) = p.messages(1001)
    assert "could not be downloaded from its link" in message["text"]


def test_a_rehosted_link_is_checked_and_uploaded(photos: Pipeline) -> None:
    p = photos
    # A photo somewhere public (here: an upload of the simulator's KIE, fetched like any link).
    posted = httpx.post(
        f"{p.sim.url}/api/file-stream-upload",
        headers={"Authorization": "Bearer sim-kie-1"},
        files={"file": ("shop.png", image_bytes((600, 600), BLUE, fmt="PNG"), "image/png")},
        data={"uploadPath": "shop", "fileName": "shop.png"},
    )
    link = posted.json()["data"]["downloadUrl"]
    p.reconfigure(video_rehost_images=True)
    p.start_worker(threads=2)
    (job,) = p.submit(1002, credits=1, chat_id=1002, image_url=link)
    (view,) = p.wait([job], timeout=60)
    assert view["status"] == "succeeded", view
    _, rehosted = uploads(p)
    assert rehosted["upload_path"] == "product-photos" and rehosted["mime_type"] == "image/png"
    assert rehosted["download_url"] in json.dumps(creates(p)[0]["body"])


def test_without_rehosting_a_link_goes_to_kie_as_it_is(photos: Pipeline) -> None:
    p = photos
    p.start_worker(threads=2)
    (job,) = p.submit(1003, credits=1, chat_id=1003)
    (view,) = p.wait([job], timeout=60)
    assert view["status"] == "succeeded"
    assert "https://example.test/p.jpg" in json.dumps(creates(p)[0]["body"])
    assert uploads(p) == []
    assert [e["event"] for e in view["events"]][:2] == ["submitted", "prompt written"]


# --- the Bot API client and the simulator's side ------------------------------------------------


def test_a_download_is_refused_above_its_limit_and_no_error_carries_the_token(
    photos: Pipeline,
) -> None:
    p = photos
    file_id = add_photo(p, image_bytes((800, 600)))
    with TelegramNotifier(p.sim.telegram_url, BOT_TOKEN, timeout=5) as tg:
        assert image_of(tg.download_file(file_id)).size == (800, 600)
        with pytest.raises(ProviderError) as too_big:
            tg.download_file(file_id, max_bytes=1000)
        with pytest.raises(ProviderError) as unknown:
            tg.download_file("AgACnothing")
    assert (too_big.value.error_class, too_big.value.code) == (
        ErrorClass.USER_ERROR,
        "file_too_large",
    )
    assert unknown.value.error_class is ErrorClass.USER_ERROR
    (record,) = httpx.get(f"{p.sim.url}/_sim/telegram/files").json()["files"]
    assert record["downloads"] == 1  # the refused one was never downloaded
    for err in (too_big.value, unknown.value):
        assert TOKEN_SECRET not in f"{err} {err.message!r}"


def test_the_simulated_upload_api_checks_its_request(photos: Pipeline) -> None:
    p = photos
    p.sim.configure({"kie": {"keys": {"sim-kie-1": {}}}})
    url = f"{p.sim.url}/api/file-stream-upload"
    photo = {"file": ("a.jpg", image_bytes(), "image/jpeg")}
    ok = httpx.post(url, headers={"Authorization": "Bearer sim-kie-1"}, files=photo,
                    data={"uploadPath": "x"})  # fmt: skip
    assert ok.json()["data"]["downloadUrl"].startswith(p.sim.url)
    bad_key = httpx.post(url, headers={"Authorization": "Bearer nope"}, files=photo,
                         data={"uploadPath": "x"})  # fmt: skip
    assert bad_key.json()["code"] == 401
    no_path = httpx.post(url, headers={"Authorization": "Bearer sim-kie-1"}, files=photo)
    assert (no_path.status_code, no_path.json()["code"]) == (400, 400)
    no_file = httpx.post(url, headers={"Authorization": "Bearer sim-kie-1"},
                         files={"other": ("a", b"x")}, data={"uploadPath": "x"})  # fmt: skip
    assert (no_file.status_code, no_file.json()["code"]) == (400, 400)
    assert len(uploads(p)) == 1  # only the good one was kept
    assert len(p.sim.calls(service="kie", endpoint="fileStreamUpload")) == 4  # all recorded


def test_the_simulated_kie_refuses_a_telegram_file_url(photos: Pipeline) -> None:
    p = photos
    body = {
        "model": "kling-2.6/image-to-video",
        "input": {
            "prompt": "A mug",
            "image_urls": [f"https://api.telegram.org/file/bot{BOT_TOKEN}/photos/file_0.jpg"],
            "duration": "5",
            "sound": False,
        },
    }
    answer = httpx.post(
        f"{p.sim.url}/api/v1/jobs/createTask",
        headers={"Authorization": "Bearer sim-kie-1"},
        json=body,
    ).json()
    task_id = answer["data"]["taskId"]
    task = wait_for(
        lambda: (t := p.sim.task(task_id))["state"] == "fail" and t, 10, "the task to fail"
    )
    assert "image fetch failed" in task["fail_msg"]

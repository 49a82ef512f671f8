"""The video job's first step, ``photo``: the product photo, fetched, checked and uploaded to KIE.

A job submitted with ``photo_file_id`` (a photo the user sent the bot) has no public URL KIE
could fetch. This step gets the photo through the Bot API (``getFile``, then the download,
whose URL carries the bot token: it never leaves :mod:`worker.telegram`), checks it with Pillow,
and uploads it to KIE's File Upload API with a key of the same pool as createTask (purpose
``upload``, paced per account). The job's state then holds the upload's URL and when KIE
deletes it (``kie_image_url``, ``kie_image_expires_at``); the prompt and submit steps use that
URL instead of ``image_url`` (:func:`job_image_url`). With ``VIDEO_REHOST_IMAGES`` an
``image_url`` job goes the same way, so a link KIE could not fetch fails here, before any money
is spent at KIE. Otherwise the step does nothing and the job goes on to ``prompt`` in the same
claim.

Every refusal of the photo (too large, too small, not a JPEG/PNG/WEBP, undecodable, too long
and narrow, gone from Telegram, a link that cannot be downloaded) is a USER_ERROR whose
``user_message`` is one of the ``reason.photo_*`` texts (:mod:`jobs.video.texts`): the job fails
and is refunded, and KIE is never asked for a video.

A clone ("make another") reuses its original's upload while KIE still keeps it for longer than
the clone can take, and uploads the photo again otherwise.
"""

from __future__ import annotations

import io
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

from jobs.video.kie import UPLOAD_LIFETIME_SECONDS, KieClient
from jobs.video.settings import video_settings
from worker.context import StepContext
from worker.errors import ErrorClass, ProviderError
from worker.outcomes import Next, Outcome
from worker.telegram import MAX_DOWNLOAD_BYTES

__all__ = ["PhotoRefused", "checked_photo", "job_image_url", "photo"]

#: The smallest side, in pixels, and the longest side over the shortest, that models take.
MIN_SIDE = 300
MAX_ASPECT = 2.5
#: Larger images are refused before they are decoded (a small file can decode to gigabytes).
MAX_PIXELS = 50_000_000
#: What every model of the catalog takes (Kling takes JPEG and PNG only; most take 10 MB).
KIE_FORMATS = {"JPEG": ("image/jpeg", ".jpg"), "PNG": ("image/png", ".png")}
MAX_KIE_BYTES = 10 * 1024 * 1024
#: The longest side sent: a larger photo is scaled down (Hailuo 03 takes at most 5760 px).
MAX_KIE_SIDE = 4096
#: What a user may send: other formats are refused, WEBP is converted to JPEG.
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP")
#: An upload is reused while KIE keeps it this much longer than the job may still take.
REUSE_MARGIN_SECONDS = 600.0
#: KIE's folder for the photos (``uploadPath``).
UPLOAD_PATH = "product-photos"
#: Content types a rehosted ``image_url`` may be served with (Pillow decides what it is).
IMAGE_TYPES = (
    "image/jpeg",
    "image/jpg",
    "image/pjpeg",
    "image/png",
    "image/webp",
    "image/gif",
    "application/octet-stream",
    "binary/octet-stream",
)
_EXIF_ORIENTATION = 0x0112

# What the user reads (the English of jobs/video/texts.py's reason.photo_* texts).
USER_TOO_LARGE = "The photo is too large. Please send a photo under 20 MB."
USER_TOO_SMALL = "The photo is too small. Please send a photo at least 300 pixels on each side."
USER_TYPE = "This file is not a supported photo. Please send a JPEG, PNG or WEBP photo."
USER_UNREADABLE = "The photo could not be read. Please send it again as a JPEG, PNG or WEBP photo."
USER_ASPECT = (
    "The photo is too long and narrow. Please send a photo whose long side is at most 2.5 times "
    "its short side."
)
USER_GONE = "The photo could not be fetched from Telegram. Please send it again."
USER_LINK = (
    "The product image could not be downloaded from its link. Please check the link or send "
    "the photo itself."
)


class PhotoRefused(ProviderError):
    """A photo the job cannot use: USER_ERROR, told to the user in plain words."""

    def __init__(self, message: str, user_message: str, *, provider: str = "photo") -> None:
        super().__init__(
            ErrorClass.USER_ERROR,
            message,
            provider=provider,
            code="photo_refused",
            user_message=user_message,
        )


@dataclass(frozen=True)
class Photo:
    """A checked photo, ready for KIE: its bytes, type, pixels and what was done to it."""

    content: bytes
    mime: str
    extension: str
    width: int
    height: int
    done: str

    def describe(self) -> str:
        return f"{self.width}x{self.height} {self.mime}, {len(self.content):,} bytes ({self.done})"


def checked_photo(raw: bytes) -> Photo:
    """``raw`` checked as a product photo, upright and in a format every model takes.

    JPEG, PNG or WEBP; at least :data:`MIN_SIDE` pixels a side and at most :data:`MAX_ASPECT`
    long over short, after EXIF orientation. A photo that needs turning, is not JPEG or PNG, is
    above :data:`MAX_KIE_BYTES` or longer than :data:`MAX_KIE_SIDE` is re-encoded (scaled down
    to that side; as PNG if it was one, else JPEG); anything else goes as sent. Raises
    :class:`PhotoRefused`."""
    try:
        with Image.open(io.BytesIO(raw)) as image:
            fmt = str(image.format or "")
            if fmt not in ACCEPTED_FORMATS:
                raise PhotoRefused(f"the photo is {fmt or 'not an image'}", USER_TYPE)
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise PhotoRefused(f"the photo is {width}x{height} pixels", USER_TOO_LARGE)
            orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
            if orientation in (5, 6, 7, 8):  # turned a quarter: the sides swap
                width, height = height, width
            _check_shape(width, height)
            image.load()  # decodes every pixel: a truncated or corrupt file fails here
            fits = len(raw) <= MAX_KIE_BYTES and max(width, height) <= MAX_KIE_SIDE
            if fmt in KIE_FORMATS and orientation == 1 and fits:
                mime, extension = KIE_FORMATS[fmt]
                return Photo(raw, mime, extension, width, height, f"{fmt} as sent")
            return _reencoded(image, fmt, orientation)
    except PhotoRefused:
        raise
    except UnidentifiedImageError:
        raise PhotoRefused("the file is not an image Pillow knows", USER_TYPE) from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise PhotoRefused(
            f"the photo does not decode ({type(exc).__name__})", USER_UNREADABLE
        ) from None


def _check_shape(width: int, height: int) -> None:
    if min(width, height) < MIN_SIDE:
        raise PhotoRefused(
            f"the photo is {width}x{height} pixels, under {MIN_SIDE} on a side", USER_TOO_SMALL
        )
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise PhotoRefused(
            f"the photo is {width}x{height} pixels, longer than {MAX_ASPECT}:1", USER_ASPECT
        )


def _reencoded(image: Image.Image, fmt: str, orientation: int) -> Photo:
    upright = ImageOps.exif_transpose(image) or image
    scaled = max(upright.size) > MAX_KIE_SIDE
    if scaled:
        upright = upright.copy()
        upright.thumbnail((MAX_KIE_SIDE, MAX_KIE_SIDE))
    out = io.BytesIO()
    if fmt == "PNG":
        upright.save(out, "PNG", optimize=True)
    if fmt != "PNG" or out.tell() > MAX_KIE_BYTES:
        out = io.BytesIO()
        if upright.mode not in ("RGB", "L"):
            background = Image.new("RGB", upright.size, "white")
            rgba = upright.convert("RGBA")
            background.paste(rgba, mask=rgba.getchannel("A"))
            upright = background
        upright.save(out, "JPEG", quality=90)
        fmt_out = "JPEG"
    else:
        fmt_out = "PNG"
    mime, extension = KIE_FORMATS[fmt_out]
    turned = (" turned upright," if orientation != 1 else "") + (" scaled down," if scaled else "")
    return Photo(
        out.getvalue(),
        mime,
        extension,
        upright.width,
        upright.height,
        f"{fmt},{turned} as {fmt_out}",
    )


def job_image_url(state: dict[str, Any], payload: dict[str, Any]) -> str:
    """The photo's URL KIE and OpenAI are given: the job's upload, else its ``image_url``."""
    url = state.get("kie_image_url") or payload.get("image_url")
    if not url:
        raise ProviderError(
            ErrorClass.INTERNAL,
            "the job has no product image URL: its photo step uploaded none",
            provider="worker",
        )
    return str(url)


# --- the step --------------------------------------------------------------------------------

#: The original job's upload, for a clone (its row and the original's, read together).
ORIGINAL_UPLOAD = """
SELECT o.state->>'kie_image_url' AS url, o.state->>'kie_image_expires_at' AS expires_at
  FROM jobs j JOIN jobs o ON o.id = j.cloned_from
 WHERE j.id = %(job_id)s"""


def photo(ctx: StepContext) -> Outcome:
    """Fetch, check and upload the product photo (see the module's docstring)."""
    payload = ctx.payload
    file_id = payload.get("photo_file_id")
    if file_id is None and not video_settings(ctx.settings).video_rehost_images:
        return Next("prompt", event="")
    reused = _reusable_upload(ctx)
    if reused is not None:
        url, expires_at = reused
        return Next(
            "prompt",
            event="photo reused",
            detail=f"KIE keeps the upload of job {ctx.job_id}'s photo until {_when(expires_at)}",
            state={"kie_image_url": url, "kie_image_expires_at": expires_at},
        )
    if file_id is not None:
        raw, source = _from_telegram(ctx, str(file_id)), "the Telegram photo"
    else:
        raw, source = _from_link(ctx, str(payload["image_url"])), "the image link"
    checked = checked_photo(raw)
    key = ctx.acquire_key("kie", "upload")
    kie = ctx.services.extension("video.kie", KieClient.from_settings)
    name = f"job-{ctx.job_id}-{secrets.token_hex(8)}{checked.extension}"
    uploaded = kie.upload_file(
        key, checked.content, file_name=name, mime=checked.mime, upload_path=UPLOAD_PATH
    )
    ctx.services.keys.report_success(key)
    expires_at = ctx.now().timestamp() + UPLOAD_LIFETIME_SECONDS
    return Next(
        "prompt",
        event="photo uploaded",
        detail=f"{source}: {checked.describe()}; uploaded to KIE with key {key.name}, "
        f"kept until {_when(expires_at)}",
        state={"kie_image_url": uploaded.url, "kie_image_expires_at": expires_at},
    )


def _reusable_upload(ctx: StepContext) -> tuple[str, float] | None:
    """An upload of this photo KIE keeps for longer than the job may still take: this job's
    own (a step run again), else, for a clone, its original's."""
    now = ctx.now().timestamp()
    left = (ctx.claim.deadline_at - ctx.now()).total_seconds()
    needed = now + max(left, 0.0) + REUSE_MARGIN_SECONDS
    state = ctx.state
    candidates = [(state.get("kie_image_url"), state.get("kie_image_expires_at"))]
    row = ctx.services.db.fetchone(ORIGINAL_UPLOAD, {"job_id": ctx.job_id})
    if row is not None:
        candidates.append((row["url"], row["expires_at"]))
    for url, expires_at in candidates:
        if url and expires_at is not None and float(expires_at) > needed:
            return str(url), float(expires_at)
    return None


def _from_telegram(ctx: StepContext, file_id: str) -> bytes:
    telegram = ctx.services.telegram
    if telegram is None:
        raise ProviderError(
            ErrorClass.INTERNAL,
            "a photo_file_id job needs TELEGRAM_BOT_TOKEN to fetch the photo",
            provider="telegram",
        )
    try:
        return telegram.download_file(file_id, MAX_DOWNLOAD_BYTES)
    except ProviderError as err:
        if err.error_class is not ErrorClass.USER_ERROR:
            raise
        user = USER_TOO_LARGE if err.code == "file_too_large" else USER_GONE
        raise PhotoRefused(err.message, user, provider="telegram") from None


def _from_link(ctx: StepContext, url: str) -> bytes:
    storage = ctx.services.storage
    dest = storage.path_for("photo", ctx.job_id, f".{secrets.token_hex(4)}.part")
    try:
        stored = storage.download(
            url,
            dest,
            provider="photo",
            max_bytes=MAX_DOWNLOAD_BYTES,
            content_types=IMAGE_TYPES,
            looks_right=lambda head: bool(head),
        )
        return stored.path.read_bytes()
    except ProviderError as err:
        # Whatever the reason (refused address, no such host, 404, too slow, too large), KIE
        # would not do better: the job fails now, before any money is spent.
        user = USER_TOO_LARGE if "limit" in err.message else USER_LINK
        raise PhotoRefused(f"the image link: {err.message}", user) from None
    finally:
        dest.unlink(missing_ok=True)


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")

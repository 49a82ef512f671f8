"""The photo intake's checks (Pillow), the product's photo fields, and the texts of each refusal.

The images are made with Pillow here; the pipeline side is tests/pipeline/test_photo_intake.py.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from jobs.video import intake, prompt, texts, validate_product
from jobs.video.intake import PhotoRefused, checked_photo, job_image_url
from worker.config import Settings, load_settings
from worker.errors import ErrorClass, InvalidRequest, ProviderError


def image(size: tuple[int, int], fmt: str = "JPEG", mode: str = "RGB", **save: Any) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, "red" if mode != "RGBA" else (255, 0, 0, 128)).save(out, fmt, **save)
    return out.getvalue()


def refusal(raw: bytes) -> PhotoRefused:
    with pytest.raises(PhotoRefused) as caught:
        checked_photo(raw)
    assert caught.value.error_class is ErrorClass.USER_ERROR
    return caught.value


@pytest.mark.parametrize(
    ("raw", "user"),
    [
        (image((299, 800)), intake.USER_TOO_SMALL),
        (image((800, 299)), intake.USER_TOO_SMALL),
        (image((751, 300)), intake.USER_ASPECT),  # 2.503:1
        (image((300, 751)), intake.USER_ASPECT),
        (image((600, 400), "GIF"), intake.USER_TYPE),
        (image((600, 400), "BMP"), intake.USER_TYPE),
        (b"%PDF-1.4 not a photo", intake.USER_TYPE),
        (b"", intake.USER_TYPE),
        (image((600, 400))[:300], intake.USER_UNREADABLE),  # a JPEG cut short
    ],
)
def test_each_refusal_says_why_in_plain_words(raw: bytes, user: str) -> None:
    assert refusal(raw).user_message == user


def test_a_decompression_bomb_is_refused_before_it_is_decoded() -> None:
    # 8000x8000 is 64 megapixels: a small PNG of one colour that would decode to 192 MB.
    assert refusal(image((8000, 8000), "PNG")).user_message == intake.USER_TOO_LARGE


def test_the_limits_themselves_pass() -> None:
    for size in ((300, 300), (750, 300), (300, 750)):
        assert (checked_photo(image(size)).width, checked_photo(image(size)).height) == size


def test_jpeg_and_png_go_as_sent() -> None:
    for fmt, mime in (("JPEG", "image/jpeg"), ("PNG", "image/png")):
        raw = image((640, 480), fmt)
        photo = checked_photo(raw)
        assert (photo.content, photo.mime) == (raw, mime)


def test_a_photo_longer_than_models_take_is_scaled_down() -> None:
    photo = checked_photo(image((5000, 3000)))
    assert (photo.width, photo.height) == (4096, 2458)
    assert Image.open(io.BytesIO(photo.content)).size == (4096, 2458)


def test_webp_becomes_jpeg_and_a_transparent_one_gets_a_white_background() -> None:
    photo = checked_photo(image((640, 480), "WEBP", mode="RGBA"))
    assert (photo.mime, photo.extension) == ("image/jpeg", ".jpg")
    decoded = Image.open(io.BytesIO(photo.content))
    assert (decoded.format, decoded.size, decoded.mode) == ("JPEG", (640, 480), "RGB")
    r, g, b = decoded.getpixel((10, 10))  # type: ignore[misc]
    assert r > 240 and 110 < g < 145 and 110 < b < 145  # half-transparent red on white


def test_an_exif_orientation_is_applied_and_the_sides_are_checked_upright() -> None:
    exif = Image.Exif()
    exif[0x0112] = 8  # turned a quarter: stored 800x320 (2.5:1), seen 320x800
    stored = io.BytesIO()
    Image.new("RGB", (800, 320), "blue").save(stored, "JPEG", exif=exif.tobytes())
    photo = checked_photo(stored.getvalue())
    decoded = Image.open(io.BytesIO(photo.content))
    assert (photo.width, photo.height, decoded.size) == (320, 800, (320, 800))
    assert decoded.getexif().get(0x0112, 1) == 1
    assert "turned upright" in photo.describe()


def test_the_product_takes_exactly_one_photo() -> None:
    s = load_settings(_env_file=None)
    by_id = validate_product({"title": "Mug", "photo_file_id": "AgACAgIAAxk-_9"}, s)
    assert by_id["photo_file_id"] == "AgACAgIAAxk-_9" and "image_url" not in by_id
    by_link = validate_product({"title": "Mug", "image_url": "https://x.test/m.jpg"}, s)
    assert by_link["image_url"] == "https://x.test/m.jpg" and "photo_file_id" not in by_link
    for product, field in (
        ({"title": "Mug"}, "product.image_url"),
        ({"title": "Mug", "image_url": "https://x.test/m.jpg", "photo_file_id": "a"}, "photo"),
        ({"title": "Mug", "photo_file_id": ""}, "product.photo_file_id"),
        ({"title": "Mug", "photo_file_id": "a/b"}, "product.photo_file_id"),
        ({"title": "Mug", "photo_file_id": "x" * 257}, "product.photo_file_id"),
        ({"title": "Mug", "photo_file_id": 12345}, "product.photo_file_id"),
    ):
        with pytest.raises(InvalidRequest) as caught:
            validate_product(product, s)
        assert field in caught.value.field, (product, caught.value.field)


def test_the_job_image_is_the_upload_else_the_link() -> None:
    upload = {"kie_image_url": "https://kie.test/u.jpg"}
    assert job_image_url(upload, {"image_url": "https://x.test/m.jpg"}) == "https://kie.test/u.jpg"
    assert job_image_url({}, {"image_url": "https://x.test/m.jpg"}) == "https://x.test/m.jpg"
    with pytest.raises(ProviderError) as caught:
        job_image_url({}, {"photo_file_id": "AgAC"})
    assert caught.value.error_class is ErrorClass.INTERNAL


@pytest.fixture
def settings_plain() -> Settings:
    return load_settings(_env_file=None)


@pytest.mark.parametrize(
    "english",
    [
        intake.USER_TOO_LARGE,
        intake.USER_TOO_SMALL,
        intake.USER_TYPE,
        intake.USER_UNREADABLE,
        intake.USER_ASPECT,
        intake.USER_GONE,
        intake.USER_LINK,
        prompt._USER_REFUSED_PHOTO,
    ],
)
def test_every_refusal_is_told_in_english_russian_and_ukrainian(
    settings_plain: Settings, english: str
) -> None:
    key = texts.CATALOGUE.reason_key(english)
    assert key is not None, english
    said = {lang: texts.CATALOGUE.reason(settings_plain, lang, english) for lang in ("ru", "uk")}
    assert all(said.values()) and english not in said.values()
    assert said["ru"] != said["uk"]

"""The catalog: each model's request as KIE documents it, its price for the options used, and a
refusal in one sentence for a value it does not take."""

from __future__ import annotations

import pytest

from jobs.video.catalog import CatalogError, Family, Options
from jobs.video.models import DEFAULT_CHAIN, MODELS, get_model, live_models

pytestmark = pytest.mark.unit

PHOTO = "https://cdn.example.test/p.jpg"

#: Each model's request for the catalog's default options, as KIE's documentation spells it
#: (field names, the type of duration, the spelling of resolutions).
EXPECTED: dict[str, dict[str, object]] = {
    "kling-2.6/image-to-video": {"image_urls": [PHOTO], "sound": False, "duration": "5"},
    "kling-3.0/video": {
        "image_urls": [PHOTO],
        "sound": False,
        "duration": "5",
        "mode": "std",
        "multi_shots": False,
    },
    "bytedance/seedance-2": {
        "first_frame_url": PHOTO,
        "resolution": "720p",
        "aspect_ratio": "adaptive",
        "duration": 5,
        "generate_audio": False,
    },
    "bytedance/seedance-2-mini": {
        "first_frame_url": PHOTO,
        "resolution": "720p",
        "aspect_ratio": "adaptive",
        "duration": 5,
        "generate_audio": False,
    },
    "wan/2-6-image-to-video": {"image_urls": [PHOTO], "duration": "5", "resolution": "720p"},
    "wan/2-7-image-to-video": {"first_frame_url": PHOTO, "duration": 5, "resolution": "720p"},
    "hailuo/2-3-image-to-video-pro": {"image_url": PHOTO, "duration": "6", "resolution": "768P"},
    "minimax-h3/image-to-video": {"first_frame_url": PHOTO, "duration": 5, "resolution": "768P"},
    "happyhorse-1-1/image-to-video": {
        "image_urls": [PHOTO],
        "duration": 5,
        "resolution": "720p",
    },
    "grok-imagine/image-to-video": {
        "image_urls": [PHOTO],
        "duration": "6",
        "resolution": "720p",
        "mode": "normal",
    },
    **{
        veo: {
            "imageUrls": [PHOTO],
            "resolution": "720p",
            "aspect_ratio": "Auto",
            "generationType": "FIRST_AND_LAST_FRAMES_2_VIDEO",
        }
        for veo in ("veo3", "veo3_fast", "veo3_lite")
    },
}

#: KIE credits for the catalog's default options.
PRICES = {
    "bytedance/seedance-2-mini": 41,
    "minimax-h3/image-to-video": 40,
    "kling-2.6/image-to-video": 55,
    "kling-3.0/video": 70,
    "bytedance/seedance-2": 205,
    "wan/2-6-image-to-video": 70,
    "wan/2-7-image-to-video": 80,
    "hailuo/2-3-image-to-video-pro": 48,
    "happyhorse-1-1/image-to-video": 112.5,
    "grok-imagine/image-to-video": 27,
    "veo3": 250,
    "veo3_fast": 60,
    "veo3_lite": 30,
}


def test_every_required_model_is_in_the_catalog_and_live() -> None:
    assert {m.id for m in live_models()} == set(EXPECTED)
    assert {m.id for m in live_models() if m.family is Family.VEO} == {
        "veo3",
        "veo3_fast",
        "veo3_lite",
    }


@pytest.mark.parametrize("model_id", sorted(EXPECTED))
def test_the_request_is_the_documented_one(model_id: str) -> None:
    body = get_model(model_id).build(Options(), prompt="A mug turns slowly", image_url=PHOTO)
    assert body == {"prompt": "A mug turns slowly", **EXPECTED[model_id]}


@pytest.mark.parametrize("model_id", sorted(PRICES))
def test_price_for_the_default_options(model_id: str) -> None:
    assert get_model(model_id).credits(Options()) == PRICES[model_id]


def test_prices_follow_the_options() -> None:
    assert get_model("bytedance/seedance-2-mini").credits(Options(duration=10)) == 82
    assert get_model("bytedance/seedance-2-mini").credits(Options(resolution="480p")) == 19
    assert get_model("kling-2.6/image-to-video").credits(Options(sound=True)) == 110
    assert get_model("kling-3.0/video").credits(Options(resolution="1080p", sound=True)) == 135
    assert get_model("veo3_fast").credits(Options(resolution="4k")) == 180


def test_the_default_chain_is_cheap_live_and_accepts_five_seconds() -> None:
    assert len(DEFAULT_CHAIN) >= 2
    for model_id in DEFAULT_CHAIN:
        spec = get_model(model_id)
        assert spec.live and spec.credits(Options(duration=5)) <= 60


def test_types_are_what_kie_checks() -> None:
    kling = get_model("kling-2.6/image-to-video").build(
        Options(duration=10), prompt="p", image_url=PHOTO
    )
    seedance = get_model("bytedance/seedance-2").build(
        Options(duration=10), prompt="p", image_url=PHOTO
    )
    assert kling["duration"] == "10" and seedance["duration"] == 10


@pytest.mark.parametrize(
    ("model_id", "options", "words"),
    [
        ("kling-2.6/image-to-video", Options(duration=7), "allowed: 5, 10"),
        ("bytedance/seedance-2-mini", Options(resolution="1080p"), "allowed: 480p, 720p"),
        ("kling-2.6/image-to-video", Options(resolution="720p"), "no resolution setting"),
        ("veo3_fast", Options(duration=5), "allowed: 8"),
        ("veo3", Options(orientation="square"), "allowed: auto, portrait, landscape"),
        ("wan/2-6-image-to-video", Options(sound=True), "silent videos only"),
        ("minimax-h3/image-to-video", Options(sound=False), "always makes sound"),
        ("hailuo/2-3-image-to-video-pro", Options(duration=10, resolution="1080p"), "10 s"),
        ("bytedance/seedance-2", Options(duration=3), "allowed: 4-15"),
    ],
)
def test_a_value_a_model_does_not_take_is_refused(
    model_id: str, options: Options, words: str
) -> None:
    with pytest.raises(CatalogError) as exc:
        get_model(model_id).resolve(options)
    assert words in str(exc.value) and model_id in str(exc.value)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("model_id", ["sora-2-image-to-video", "sora-2-pro-storyboard"])
def test_sora_2_is_withdrawn_with_a_replacement(model_id: str) -> None:
    with pytest.raises(CatalogError) as exc:
        get_model(model_id)
    text = str(exc.value)
    assert "withdrawn" in text and "use bytedance/seedance-2-mini instead" in text
    assert text.count(". ") == 0  # one sentence


def test_an_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(CatalogError, match=r"not a video model.*kling-2\.6/image-to-video"):
        get_model("kling-9/teleport")


def test_prompt_is_cut_to_the_model_cap() -> None:
    spec = get_model("kling-2.6/image-to-video")
    body = spec.build(Options(), prompt="x" * 5000, image_url=PHOTO)
    assert len(body["prompt"]) == spec.prompt_cap == 1000


def test_every_entry_states_render_time_and_use() -> None:
    for spec in MODELS.values():
        if spec.live:
            assert spec.render_seconds > 0 and 0 < spec.first_poll_seconds <= spec.render_seconds
            assert spec.good_at and spec.vendor


def test_a_job_records_what_kie_charged_else_the_catalog_price() -> None:
    from jobs.video.steps import spend_record

    options = {"duration": 10, "resolution": "720p", "orientation": "auto", "sound": False}
    told = spend_record("bytedance/seedance-2-mini", options, 80.5)["spend"]
    assert (told["amount"], told["source"]) == (80.5, "creditsConsumed")
    priced = spend_record("bytedance/seedance-2-mini", options, None)["spend"]
    assert (priced["amount"], priced["source"], priced["resource"]) == (
        82.0,
        "catalog price",
        "bytedance/seedance-2-mini",
    )
    assert priced["unit"] == "KIE credits" and priced["provider"] == "kie"

"""Tiers from the environment and from a TOML file; a bad option is refused naming where."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.video.models import DEFAULT_CHAIN
from jobs.video.tiers import chain_from_payload, tiers_from_env, tiers_from_file
from worker.errors import ConfigError

pytestmark = pytest.mark.unit


def env(**over: str | int) -> dict[str, str | int]:
    base: dict[str, str | int] = {
        "video_models": "",
        "kie_model": "",
        "price": 1,
        "duration": "",
        "resolution": "",
        "orientation": "",
        "sound": "",
    }
    base.update(over)
    return base


def test_without_settings_the_standard_tier_is_the_default_chain() -> None:
    tiers = tiers_from_env(**env())  # type: ignore[arg-type]
    tier = tiers.get(None)
    assert tiers.names == ("standard",) and tier.price == 1
    assert tier.models == DEFAULT_CHAIN
    assert all(e.credits <= 60 for e in tier.chain)
    assert tier.prompt_cap == 1000  # Kling 2.6's, the smallest of the chain


def test_kie_model_is_a_chain_of_one() -> None:
    tier = tiers_from_env(**env(kie_model="wan/2-7-image-to-video", price=3)).get("standard")  # type: ignore[arg-type]
    assert tier.models == ("wan/2-7-image-to-video",) and tier.price == 3


def test_video_models_and_options_apply_to_every_model() -> None:
    tier = tiers_from_env(
        **env(
            video_models="bytedance/seedance-2, wan/2-7-image-to-video",
            duration="10",
            resolution="1080p",
        )  # type: ignore[arg-type]
    ).get(None)
    assert [e.credits for e in tier.chain] == [1020, 240]
    assert [e.as_dict() for e in tier.chain][1] == {
        "model": "wan/2-7-image-to-video",
        "options": {"duration": 10, "resolution": "1080p", "orientation": "auto", "sound": False},
    }
    assert chain_from_payload([e.as_dict() for e in tier.chain]) == tier.chain


@pytest.mark.parametrize(
    ("over", "variable", "words"),
    [
        ({"kie_model": "sora-2-image-to-video"}, "KIE_MODEL", "use bytedance/seedance-2-mini"),
        (
            {"video_models": "kling-2.6/image-to-video,sora-2-pro-image-to-video"},
            "VIDEO_MODELS",
            "withdrawn",
        ),
        ({"duration": "7"}, "VIDEO_DURATION", "allowed: 5, 10"),
        ({"resolution": "1080p"}, "VIDEO_RESOLUTION", "allowed: 480p, 720p"),
        ({"resolution": "8k"}, "VIDEO_RESOLUTION", "must be one of"),
        ({"sound": "maybe"}, "VIDEO_SOUND", "on or off"),
        ({"sound": "off"}, "VIDEO_SOUND", "always makes sound"),
        ({"orientation": "diagonal"}, "VIDEO_ORIENTATION", "must be one of"),
        (
            {"video_models": "veo3", "kie_model": "veo3"},
            "VIDEO_MODELS or its one-model alias KIE_MODEL",
            "not both",
        ),
    ],
)
def test_refused_at_start_naming_the_variable(
    over: dict[str, str], variable: str, words: str
) -> None:
    with pytest.raises(ConfigError) as exc:
        tiers_from_env(**env(**over))  # type: ignore[arg-type]
    assert variable in str(exc.value) and words in str(exc.value)


TOML = """
default = "standard"

[tiers.standard]
price = 1
duration = 5
chain = ["bytedance/seedance-2-mini", "kling-2.6/image-to-video"]

[tiers.premium]
price = 4
chain = [
  { model = "veo3_fast", resolution = "1080p" },
  { model = "bytedance/seedance-2", duration = 8, orientation = "portrait" },
]
"""


def test_a_tiers_file_defines_several(tmp_path: Path) -> None:
    path = tmp_path / "tiers.toml"
    path.write_text(TOML)
    tiers = tiers_from_file(path)
    assert tiers.names == ("standard", "premium") and tiers.default == "standard"
    premium = tiers.get("premium")
    assert premium.price == 4 and premium.models == ("veo3_fast", "bytedance/seedance-2")
    assert [e.credits for e in premium.chain] == [65, 328]
    assert (
        premium.chain[1].model.build(premium.chain[1].options, prompt="p", image_url="u")[
            "aspect_ratio"
        ]
        == "9:16"
    )
    with pytest.raises(KeyError, match="tiers: standard, premium"):
        tiers.get("gold")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (
            "[tiers.a]\nprice = 1\nchain = ['veo3']\nduration = 5\n",
            "tier a, model 1 (veo3): veo3 does not take a duration of 5 s",
        ),
        ("[tiers.a]\nprice = -1\nchain = ['veo3']\n", "tier a: price"),
        ("[tiers.a]\nprice = 1\nchain = []\n", "chain must be a list"),
        ("[tiers.a]\nprice = 1\nchain = ['sora-2-image-to-video']\n", "withdrawn"),
        ("[tiers.a]\nprice = 1\nchain = ['veo3']\ncolour = 'red'\n", "unknown key 'colour'"),
        ("default = 'b'\n[tiers.a]\nprice = 1\nchain = ['veo3']\n", "default = 'b'"),
        ("[tiers.a\n", "not valid TOML"),
    ],
)
def test_a_bad_tiers_file_is_refused_naming_where(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "tiers.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        tiers_from_file(path)
    assert "VIDEO_TIERS_FILE" in str(exc.value) and words in str(exc.value)

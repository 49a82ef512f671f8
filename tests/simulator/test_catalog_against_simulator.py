"""The video catalog's requests, checked against the simulator's independent KIE schemas.

``jobs/video/models`` builds the bodies we send; ``simulator/kie_models.py`` encodes what KIE
accepts, written separately from KIE's pages. Every option combination the catalog accepts at
start must make a body the simulator accepts, at the same price: a disagreement is a bug on one
side (read KIE's page to know which). The simulator itself never imports ``jobs/``.
"""

from __future__ import annotations

import itertools

import pytest

from jobs.video.catalog import CatalogError, Family, ModelSpec, Options
from jobs.video.models import live_models
from simulator import kie_models

LIVE = live_models()
IMAGE = "https://x.example/a.png"


def test_the_simulator_serves_every_live_catalog_model() -> None:
    served = {n for n, s in kie_models.MODELS.items() if s.default_state == kie_models.LIVE}
    assert {m.model_value for m in LIVE} == served


@pytest.mark.parametrize("model", LIVE, ids=lambda m: m.id)
def test_every_accepted_option_makes_a_body_kie_accepts_at_the_same_price(
    model: ModelSpec,
) -> None:
    schema = kie_models.MODELS[model.model_value]
    prefix = "" if model.family is Family.VEO else "input."
    checked = 0
    for duration, resolution, orientation, sound in itertools.product(
        model.durations,
        [None, *model.resolutions],
        [None, "auto", "portrait", "landscape", "square"],
        [None, True, False],
    ):
        options = Options(duration, resolution, orientation, sound)
        try:
            body = model.build(options, prompt="A mug on a table", image_url=IMAGE)
        except CatalogError:
            continue  # refused at start: never sent
        problem = schema.validate(body, prefix)
        assert problem is None, f"{model.id} {options.describe()}: {problem}"
        assert model.credits(options) == pytest.approx(schema.credits(body)), options.describe()
        checked += 1
    assert checked > 0
    # The longest prompt the catalog sends fits KIE's cap.
    long = model.build(Options(), prompt="x" * (model.prompt_cap + 100), image_url=IMAGE)
    assert schema.validate(long, prefix) is None

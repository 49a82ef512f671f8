"""What the simulator's test modules share: the KIE key they use and a client carrying it.

Each module starts its own simulator (``sim``, module-scoped, configured for what it tests);
the ``kie`` client below talks to whichever one the module provides. ``MODEL`` is a live model and ``VALID_INPUT`` the rest of a valid ``input`` for it
besides the prompt."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from simulator.testing import RunningSimulator

KEY = "kie-test-key"
MODEL = "kling-2.6/image-to-video"
IMAGE = "https://example.com/product.png"
#: ``input`` of a valid createTask for ``MODEL``, without its prompt (5 s silent: 55 credits).
VALID_INPUT: dict[str, Any] = {"image_urls": [IMAGE], "sound": False, "duration": "5"}
MODEL_CREDITS = 55.0
FORBIDDEN_MSG = "Invalid prompt: prompt contains prohibited content"


@pytest.fixture
def kie(sim: RunningSimulator) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=sim.kie_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=5
    ) as client:
        yield client

"""What the simulator's test modules share: the KIE key they use and a client carrying it.

Each module starts its own simulator (``sim``, module-scoped, configured for what it tests);
the ``kie`` client below talks to whichever one the module provides."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from simulator.testing import RunningSimulator

KEY = "kie-test-key"
MODEL = "sora-2-image-to-video"
IMAGE = "https://example.com/product.png"
FORBIDDEN_MSG = "Invalid prompt: prompt contains prohibited content"


@pytest.fixture
def kie(sim: RunningSimulator) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=sim.kie_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=5
    ) as client:
        yield client

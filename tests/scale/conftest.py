"""The pipeline's fixtures (real PostgreSQL, Redis, Dramatiq and the simulator) and the fake
systemd notify socket, for the connection-budget and two-host tests."""

from tests.pipeline.conftest import pipeline, sim  # noqa: F401 (fixtures)
from tests.pipeline.test_sd_notify import notify  # noqa: F401 (fixture)

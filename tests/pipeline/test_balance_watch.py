"""The maintenance leader exports each provider account's balance for the KieBalanceLow alert."""

from __future__ import annotations

from prometheus_client import REGISTRY

from tests.pipeline.conftest import Pipeline
from worker.balance_watch import BalanceWatch
from worker.kinds import all_providers


def _balance(account: str) -> float | None:
    return REGISTRY.get_sample_value(
        "worker_provider_balance", {"provider": "kie", "account": account, "key": account}
    )


def test_the_leader_reads_each_kie_account_balance_once(pipeline: Pipeline) -> None:
    pipeline.sim.configure(
        {"kie": {"keys": {"sim-kie-1": {"credits": 1234.5}, "sim-kie-2": {"credits": 80}}}}
    )
    watch = BalanceWatch(pipeline.settings, interval=3600.0)
    thread = watch.after_tick()
    assert thread is not None
    thread.join(30)
    assert watch.after_tick() is None  # not due again for an hour
    assert (_balance("k1"), _balance("k2")) == (1234.5, 80.0)
    # One read per account, none for a provider that declares no balance (OpenAI).
    assert {p.name for p in all_providers() if p.balance is not None} == {"kie"}


def test_a_failed_read_keeps_the_last_figure_and_counts(pipeline: Pipeline) -> None:
    pipeline.sim.configure({"kie": {"keys": {"sim-kie-1": {"credits": 500}}}})
    BalanceWatch(pipeline.settings).run()
    assert _balance("k1") == 500.0
    errors = (
        REGISTRY.get_sample_value("worker_provider_balance_errors_total", {"provider": "kie"})
        or 0.0
    )
    pipeline.sim.configure({"kie": {"keys": {"sim-kie-1": {"revoked": True}}}})
    read = BalanceWatch(pipeline.settings).run()
    assert ("kie", "k1") not in read
    assert _balance("k1") == 500.0
    after = REGISTRY.get_sample_value("worker_provider_balance_errors_total", {"provider": "kie"})
    assert after is not None and after >= errors + 1

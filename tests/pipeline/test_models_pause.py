"""What a model KIE pauses costs in create calls, with several `worker run` processes at once:
in each process the first create on a model not yet seen to work goes alone (the others wait
for its answer), and the process that finds it paused tells every other through Redis: one call
per worker at most, whatever the number of jobs or threads."""

from __future__ import annotations

from jobs.video.models import DEFAULT_CHAIN
from tests.pipeline.conftest import Pipeline

WORKERS, THREADS, JOBS = 2, 4, 60


def test_a_paused_model_costs_few_create_calls_per_worker(pipeline: Pipeline) -> None:
    paused, fallback = DEFAULT_CHAIN[0], DEFAULT_CHAIN[1]
    pipeline.sim.pause_model(paused)
    for i in range(WORKERS):
        pipeline.start_process(threads=THREADS, instance=i)
    jobs: list[int] = []
    pipeline.client.grant(21, JOBS)
    for _ in range(JOBS // 5):
        jobs += pipeline.submit(21, count=5)
    done = pipeline.wait(jobs, timeout=120)
    assert [j["status"] for j in done] == ["succeeded"] * JOBS
    spent = [
        c for c in pipeline.sim.calls_for_model(paused, endpoint="createTask") if c["code"] == 500
    ]
    made = pipeline.sim.calls_for_model(fallback, endpoint="createTask")
    per_worker = len(spent) / WORKERS
    print(
        f"\ncreateTask calls on the paused model: {len(spent)} for {JOBS} jobs, "
        f"{per_worker:g} per worker ({WORKERS} workers x {THREADS} threads)"
    )
    # At most one per worker process; never one per thread or per job.
    assert 1 <= len(spent) <= WORKERS
    assert len(made) == JOBS and pipeline.paid_creates() == JOBS
    assert pipeline.ledger_ok()

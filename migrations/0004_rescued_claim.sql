-- Which claim the last rescue took back (never paying twice).
--
-- A rescue re-queues a running job whose lease expired: its worker died or stalled. The step it
-- was running may have done something outside the database before it stopped (KIE accepted a
-- createTask, say) without committing what it learned. The rescue now records the token it took
-- back, so the next claim can tell that it follows a rescue of this very step
-- (rescued_claim = claims - 1) and a step whose side effect must not happen twice can refuse
-- to repeat it. Nullable with no default: adding it rewrites nothing.

ALTER TABLE jobs ADD COLUMN rescued_claim bigint;

COMMENT ON COLUMN jobs.rescued_claim IS
    'the claim token the last rescue took back; the next claim follows it when claims = rescued_claim + 1';

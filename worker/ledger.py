"""The credit ledger: grant, hold, capture (post) and refund (void) as immutable transfers.

Every function takes a connection inside the caller's transaction, so a job's state change and
its money movement commit together. Transfer ids are deterministic, so a replayed call inserts
nothing and changes nothing: a job's hold, capture and refund are ``0000000k-0000-4000-8000-<job
id in hex>`` with k = 1, 2, 3 (:func:`job_transfer_id`, and the SQL function of the same name), a
grant with an idempotency key is uuid5 of the user and the key (:func:`grant_id`; without a key,
a random uuid4). The database's unique index makes a hold resolve exactly once and its CHECK
makes an overdraft impossible.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Any

import psycopg

from worker.db import Connection
from worker.errors import HoldAlreadyResolved, InsufficientCredits, LedgerError
from worker.sql import ledger as q

#: Namespace of the deterministic transfer ids. Never change it: replays depend on it.
TRANSFER_NAMESPACE = uuid.UUID("5f0c3e0e-4c1b-4a59-9a51-1f6d3f1b7c42")

ISSUANCE = "system:issuance"
REVENUE = "system:revenue"


def transfer_id(*parts: object) -> uuid.UUID:
    return uuid.uuid5(TRANSFER_NAMESPACE, "/".join(str(p) for p in parts))


HOLD, CAPTURE, REFUND = 1, 2, 3


def job_transfer_id(job_id: int, kind: int) -> uuid.UUID:
    """The id of a job's hold (1), capture (2) or refund (3): ``0000000k-0000-4000-8000-<job>``.

    Readable in a psql session, unique per job and kind, and computed identically by the SQL
    function of the same name (the submit function inserts holds in one round trip)."""
    if not 0 < job_id < 2**48:
        raise LedgerError(f"job id {job_id} is out of the range of transfer ids")
    return uuid.UUID(f"{kind:08x}-0000-4000-8000-{job_id:012x}")


def hold_id(job_id: int) -> uuid.UUID:
    return job_transfer_id(job_id, HOLD)


def capture_id(job_id: int) -> uuid.UUID:
    return job_transfer_id(job_id, CAPTURE)


def refund_id(job_id: int) -> uuid.UUID:
    return job_transfer_id(job_id, REFUND)


def grant_id(user_id: int, idempotency_key: str | None) -> uuid.UUID:
    return transfer_id("grant", user_id, idempotency_key) if idempotency_key else uuid.uuid4()


@dataclass(frozen=True)
class Balance:
    user_id: int
    available: int
    held: int
    spent: int
    refunded: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_system_ids: dict[str, int] = {}


def _system_account(conn: Connection, code: str) -> int:
    # Keyed by database too: tests run several databases in one process.
    cache_key = f"{conn.info.dbname}:{code}"
    if cache_key not in _system_ids:
        row = conn.execute(q.SYSTEM_ACCOUNT, {"code": code}).fetchone()
        if row is None:
            raise LedgerError(f"system account {code} is missing; run `worker migrate`")
        _system_ids[cache_key] = int(row["id"])
    return _system_ids[cache_key]


def ensure_user_account(conn: Connection, user_id: int) -> int:
    conn.execute(q.ENSURE_USER_ACCOUNT, {"user_id": user_id})
    row = conn.execute(q.USER_ACCOUNT, {"user_id": user_id}).fetchone()
    assert row is not None
    return int(row["id"])


def user_account(conn: Connection, user_id: int, *, lock: bool = False) -> dict[str, Any] | None:
    return conn.execute(
        q.USER_ACCOUNT_FOR_UPDATE if lock else q.USER_ACCOUNT, {"user_id": user_id}
    ).fetchone()


def available_of(account: dict[str, Any]) -> int:
    return int(account["credits_posted"] - account["debits_posted"] - account["debits_pending"])


def _insert(
    conn: Connection,
    *,
    id: uuid.UUID,
    kind: str,
    debit: int,
    credit: int,
    amount: int,
    reason: str,
    pending_id: uuid.UUID | None = None,
    job_id: int | None = None,
) -> bool:
    """Insert one transfer; False if a transfer with this id already exists (a replay)."""
    params = {
        "id": id,
        "kind": kind,
        "debit": debit,
        "credit": credit,
        "amount": amount,
        "pending_id": pending_id,
        "job_id": job_id,
        "reason": reason,
    }
    try:
        with conn.transaction():  # a savepoint: a refusal leaves the caller's transaction usable
            inserted = conn.execute(q.INSERT_TRANSFER, params).fetchone() is not None
    except psycopg.errors.IntegrityError as exc:
        refusal = refusal_of(exc, hold=str(pending_id))
        if refusal is None:
            raise
        raise refusal from None
    if not inserted:
        existing = conn.execute(q.TRANSFER, {"id": id}).fetchone()
        assert existing is not None
        if (existing["kind"], existing["amount"], existing["debit_account_id"]) != (
            kind,
            amount,
            debit,
        ):
            raise LedgerError(f"transfer {id} exists with different content; refusing the replay")
    return inserted


def refusal_of(exc: psycopg.errors.IntegrityError, *, hold: str) -> LedgerError | None:
    """The ledger's own error for a database refusal of a transfer (a hold resolved twice, an
    overdraft), or None when ``exc`` is something else."""
    constraint = exc.diag.constraint_name
    if isinstance(exc, psycopg.errors.UniqueViolation) and constraint == "transfers_resolve_once":
        return HoldAlreadyResolved(f"the hold {hold} was already resolved the other way")
    if isinstance(exc, psycopg.errors.CheckViolation) and constraint == "accounts_no_overdraft":
        return LedgerError("the transfer would overdraw the account")
    return None


def grant(
    conn: Connection,
    user_id: int,
    amount: int,
    *,
    idempotency_key: str | None = None,
    reason: str = "grant",
) -> bool:
    """Credit ``amount`` to a user (from issuance). Replaying the same key changes nothing."""
    if amount <= 0:
        raise LedgerError("a grant must be a positive number of credits")
    account = ensure_user_account(conn, user_id)
    return _insert(
        conn,
        id=grant_id(user_id, idempotency_key),
        kind="single",
        debit=_system_account(conn, ISSUANCE),
        credit=account,
        amount=amount,
        reason=reason,
    )


def hold(conn: Connection, *, job_id: int, user_id: int, amount: int) -> bool:
    """Reserve ``amount`` of the user's credits for a job (a pending transfer)."""
    account = user_account(conn, user_id)
    if account is None:
        raise InsufficientCredits(user_id, amount, 0)
    try:
        return _insert(
            conn,
            id=hold_id(job_id),
            kind="pending",
            debit=int(account["id"]),
            credit=_system_account(conn, REVENUE),
            amount=amount,
            reason=f"hold for job {job_id}",
            job_id=job_id,
        )
    except LedgerError:
        fresh = user_account(conn, user_id)
        raise InsufficientCredits(user_id, amount, available_of(fresh) if fresh else 0) from None


def _resolve(conn: Connection, job_id: int, kind: str) -> bool:
    pending = conn.execute(q.TRANSFER, {"id": hold_id(job_id)}).fetchone()
    if pending is None:
        return False  # a free job: nothing was held
    return _insert(
        conn,
        id=capture_id(job_id) if kind == "post" else refund_id(job_id),
        kind=kind,
        debit=int(pending["debit_account_id"]),
        credit=int(pending["credit_account_id"]),
        amount=int(pending["amount"]),
        pending_id=pending["id"],
        job_id=job_id,
        reason=f"{'capture' if kind == 'post' else 'refund'} for job {job_id}",
    )


def capture(conn: Connection, job_id: int) -> bool:
    """Post the job's hold: the credits are spent. True if this call moved them."""
    return _resolve(conn, job_id, "post")


def refund(conn: Connection, job_id: int) -> bool:
    """Void the job's hold: the credits return to the user. True if this call moved them."""
    return _resolve(conn, job_id, "void")


def hold_state(conn: Connection, job_id: int) -> str | None:
    """``held``, ``captured``, ``refunded``, or None when nothing was held."""
    pending = conn.execute(q.TRANSFER, {"id": hold_id(job_id)}).fetchone()
    if pending is None:
        return None
    resolution = conn.execute(q.RESOLUTION_OF, {"pending_id": pending["id"]}).fetchone()
    if resolution is None:
        return "held"
    return "captured" if resolution["kind"] == "post" else "refunded"


def balance(conn: Connection, user_id: int) -> Balance:
    account = user_account(conn, user_id)
    if account is None:
        return Balance(user_id, 0, 0, 0, 0)
    refunded = conn.execute(q.REFUNDED_TOTAL, {"account_id": account["id"]}).fetchone()
    return Balance(
        user_id=user_id,
        available=available_of(account),
        held=int(account["debits_pending"]),
        spent=int(account["debits_posted"]),
        refunded=int(refunded["refunded"]) if refunded else 0,
    )


def check(conn: Connection, *, replay_sample: int = 200) -> list[Check]:
    """Run every ledger invariant; read-only (the replay check rolls itself back)."""
    checks: list[Check] = []

    totals = conn.execute(q.CHECK_DOUBLE_ENTRY).fetchone() or {}
    ok = totals.get("dp") == totals.get("cp") and totals.get("dpo") == totals.get("cpo")
    checks.append(
        Check(
            "debits equal credits",
            ok,
            f"pending {totals.get('dp')} debited / {totals.get('cp')} credited; "
            f"posted {totals.get('dpo')} debited / {totals.get('cpo')} credited",
        )
    )

    drift = conn.execute(q.CHECK_REPLAY).fetchall()
    checks.append(
        Check(
            "account counters equal a replay of the transfers",
            not drift,
            "all accounts match"
            if not drift
            else "mismatch in " + ", ".join(r["code"] for r in drift),
        )
    )

    over = conn.execute(q.CHECK_OVERDRAFT).fetchall()
    checks.append(
        Check(
            "no account is overdrawn",
            not over,
            "none overdrawn" if not over else "overdrawn: " + ", ".join(r["code"] for r in over),
        )
    )

    multi = conn.execute(q.CHECK_RESOLVED_ONCE).fetchall()
    checks.append(
        Check(
            "each hold resolved at most once, matching its amount",
            not multi,
            "every hold resolved at most once"
            if not multi
            else "holds resolved wrongly: " + ", ".join(str(r["id"]) for r in multi),
        )
    )

    bad_jobs = conn.execute(q.CHECK_JOB_HOLDS).fetchall()
    detail = "every job's hold agrees with its status"
    if bad_jobs:
        detail = "; ".join(
            f"job {r['id']} is {r['status']} but its hold is "
            f"{_HOLD_WORDS[r['resolution']] if r['has_hold'] else 'missing'}"
            for r in bad_jobs[:10]
        )
    checks.append(Check("job status agrees with its hold", not bad_jobs, detail))

    checks.append(_check_replay_is_noop(conn, replay_sample))
    return checks


_HOLD_WORDS = {None: "open", "post": "captured", "void": "refunded"}


def _check_replay_is_noop(conn: Connection, sample: int) -> Check:
    """Re-insert recent transfers with their own ids inside a rolled-back savepoint."""
    name = "replaying a transfer id changes nothing"
    before = conn.execute(q.ACCOUNT_SNAPSHOT).fetchone()
    rows = conn.execute(q.SAMPLE_TRANSFERS, {"limit": sample}).fetchall()
    changed = 0
    try:
        with conn.transaction(force_rollback=True):
            for r in rows:
                if _insert(
                    conn,
                    id=r["id"],
                    kind=r["kind"],
                    debit=r["debit_account_id"],
                    credit=r["credit_account_id"],
                    amount=r["amount"],
                    pending_id=r["pending_id"],
                    job_id=r["job_id"],
                    reason=r["reason"],
                ):
                    changed += 1
            after = conn.execute(q.ACCOUNT_SNAPSHOT).fetchone()
    except (LedgerError, psycopg.Error) as exc:
        return Check(name, False, f"a replay was refused: {exc}")
    ok = changed == 0 and before == after
    return Check(
        name,
        ok,
        f"replayed {len(rows)} transfers, {changed} inserted, balances "
        f"{'unchanged' if before == after else 'CHANGED'}",
    )

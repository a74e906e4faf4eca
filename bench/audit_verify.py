"""How fast `aidc audit verify` walks a hash chain, against the issue's goal (1,000,000 records in under
30 s) and against a bare SHA-256 pass over the same canonical bytes (the floor: what hashing alone costs
here), side by side: in memory (`security.audit.verify` alone) and as the server does it, reading the
records back from an SQLite store in batches.

    .venv/bin/python bench/audit_verify.py                 # 1,000,000 records
    .venv/bin/python bench/audit_verify.py --records 100000 --json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from datetime import UTC, datetime, timedelta

from rich.console import Console
from rich.progress import track

from aidc.security.audit import AuditRecord, append, canonical, sign_head, verify

GOAL_S = 30.0
KEY = b"bench-key-" * 4


def build(n: int) -> list[AuditRecord]:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    out: list[AuditRecord] = []
    previous = None
    for i in track(range(n), description="building the chain", transient=True):
        record = AuditRecord(
            seq=0,
            at=t0 + timedelta(milliseconds=i),
            actor=f"user{i % 97}",
            action=("job.submit", "job.cancel", "token.create", "node.drain")[i % 4],
            target=f"job/{i}",
            outcome="allowed" if i % 11 else "denied",
            request_id=f"{i:016x}",
            detail={"queue": "research", "gpus": i % 8},
        )
        previous = append(previous, record)
        out.append(previous)
    return out


def through_store(records: list[AuditRecord], signed: str) -> float:
    """Write the chain into a fresh SQLite store, then time what `aidc audit verify` does: scan + verify."""
    import tempfile
    from pathlib import Path

    from sqlalchemy import insert

    from aidc.store.migrate import upgrade
    from aidc.store.sql_store import SqlStore
    from aidc.store.tables import audit_head, audit_records

    with tempfile.TemporaryDirectory(prefix="aidc-bench-audit-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'aidc.db'}"
        upgrade(url)
        store = SqlStore(url, audit_key=KEY, sqlite_synchronous="OFF")
        try:
            rows = [
                {
                    "seq": r.seq,
                    "at": r.at,
                    "actor": r.actor,
                    "action": r.action,
                    "target": r.target,
                    "outcome": r.outcome,
                    "request_id": r.request_id,
                    "detail": json.dumps(r.detail, sort_keys=True),
                    "prev_hash": r.prev_hash,
                    "hash": r.hash,
                }
                for r in records
            ]
            with store.unit_of_work() as uow:
                connection = uow._connection  # type: ignore[attr-defined]  # bulk load: not a use case
                for start in range(0, len(rows), 50_000):
                    connection.execute(insert(audit_records), rows[start : start + 50_000])
                head = records[-1]
                connection.execute(
                    insert(audit_head), [{"id": 1, "seq": head.seq, "hash": head.hash, "signature": signed}]
                )
                uow.commit()
            started = time.perf_counter()
            with store.unit_of_work(read_only=True) as uow:
                verdict = verify(uow.audit.scan(), KEY, uow.audit.head_signature())
            elapsed = time.perf_counter() - started
            assert verdict.ok, verdict
            return elapsed
        finally:
            store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-store", action="store_true", help="in memory only")
    args = parser.parse_args()
    records = build(args.records)
    signed = sign_head(KEY, records[-1].seq, records[-1].hash)
    started = time.perf_counter()
    verdict = verify(records, KEY, signed)
    verify_s = time.perf_counter() - started
    assert verdict.ok, verdict
    started = time.perf_counter()
    for record in records:
        hashlib.sha256(canonical(record)).hexdigest()
    floor_s = time.perf_counter() - started
    store_s = None if args.no_store else through_store(records, signed)
    row = {
        "records": args.records,
        "verify_s": verify_s,
        "records_per_s": args.records / verify_s,
        "canonical_sha256_s": floor_s,
        "ratio_to_hashing_alone": verify_s / floor_s,
        "goal_s_per_million": GOAL_S,
        "under_goal": verify_s * 1_000_000 / args.records < GOAL_S,
        "through_sqlite_store_s": store_s,
        "store_ratio_to_memory": None if store_s is None else store_s / verify_s,
    }
    if args.json:
        print(json.dumps(row, indent=2))
        return
    Console().print(
        f"verify {args.records:,} records: {verify_s:.2f} s ({row['records_per_s']:,.0f}/s); "
        f"canonical form + SHA-256 alone: {floor_s:.2f} s (verify = {row['ratio_to_hashing_alone']:.2f}x); "
        f"goal: 1,000,000 in under {GOAL_S:g} s: {'met' if row['under_goal'] else 'NOT met'}"
    )
    if store_s is not None:
        per_million = store_s * 1_000_000 / args.records
        Console().print(
            f"read back from an SQLite store and verified (what `aidc audit verify` does): {store_s:.2f} s "
            f"({store_s / verify_s:.2f}x in memory); goal: {'met' if per_million < GOAL_S else 'NOT met'}"
        )


if __name__ == "__main__":
    main()

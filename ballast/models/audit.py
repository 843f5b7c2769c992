"""The audit log's hash chain: each entry's hash covers its content and the previous entry's hash.

Editing, deleting or reordering any entry breaks every hash after it, which `verify_chain` finds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    at: datetime
    actor: str
    action: str
    subject: str
    payload: str  # canonical JSON
    prev_hash: str
    hash: str


def canonical(payload: dict) -> str:
    """JSON with sorted keys and no spaces, so the same content always hashes the same."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)


def entry_hash(seq: int, at: datetime, actor: str, action: str, subject: str, payload: str, prev_hash: str) -> str:
    body = "\x1f".join([str(seq), at.isoformat(), actor, action, subject, payload, prev_hash])
    return hashlib.sha256(body.encode()).hexdigest()


def next_entry(
    prev: AuditEntry | None, at: datetime, actor: str, action: str, subject: str, payload: dict
) -> AuditEntry:
    seq = 1 if prev is None else prev.seq + 1
    prev_hash = GENESIS if prev is None else prev.hash
    text = canonical(payload)
    return AuditEntry(seq, at, actor, action, subject, text, prev_hash,
                      entry_hash(seq, at, actor, action, subject, text, prev_hash))


def verify_chain(entries: Iterable[AuditEntry]) -> list[str]:
    """Every break in the chain, as a sentence; an empty list means the log is intact."""
    problems: list[str] = []
    expected_prev, expected_seq = GENESIS, 1
    for e in entries:
        if e.seq != expected_seq:
            problems.append(f"entry {e.seq}: expected sequence number {expected_seq} (an entry was deleted or moved)")
        if e.prev_hash != expected_prev:
            problems.append(f"entry {e.seq}: does not chain to the entry before it (deleted, inserted or edited)")
        recomputed = entry_hash(e.seq, e.at, e.actor, e.action, e.subject, e.payload, e.prev_hash)
        if recomputed != e.hash:
            problems.append(f"entry {e.seq}: content does not match its hash (edited: {e.action} {e.subject})")
        expected_prev, expected_seq = e.hash, e.seq + 1
    return problems

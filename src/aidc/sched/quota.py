"""Queue quotas and cohorts: how much each queue's running work may hold, cluster-wide.

The semantics are Kueue's ClusterQueues and cohorts, per resource: GPUs of any model, GPUs of one
model (`Quota.gpu_models`), CPUs and memory. A job counts its per-node resources times its nodes;
a fraction of a GPU counts as that fraction.

- A queue without a cohort may use up to its quota (its nominal quota).
- A queue in a cohort may use more than its quota by borrowing what the other queues of the cohort
  do not use, up to `borrowing_limit` above its quota (no limit when not given). It lends what it
  does not use, but never more than `lending_limit` (all of it when not given): the rest of its quota
  is guaranteed to it. In numbers, per resource: lendable_P = min(nominal_P, lending_limit_P) and
  guaranteed_P = nominal_P - lendable_P for each queue P of the cohort, and what the cohort's queues
  use beyond their guaranteed parts must fit in what they lend:
  sum over P of max(0, used_P - guaranteed_P) <= sum over P of lendable_P.
- A queue with no quota on a resource is not limited on it and takes no part in its pool: it neither
  lends nor borrows that resource (its borrowing and lending limits on it are ignored). GPU model
  quotas are pooled by the exact name written in the quota ("H100"), among the cohort's queues that
  name it.

A queue using less than its quota may still have to wait when the cohort has lent its unused quota
to others; with preemption on, the scheduler then reclaims it (`within_nominal`, `borrowing`).

All amounts are exact integers: GPUs in thousandths (milli-GPUs), CPUs in milli-cores, memory in bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from aidc.domain.nodes import gpu_model_matches
from aidc.domain.queues import Queue, Quota
from aidc.domain.units import format_size
from aidc.sched.capacity import Request, to_milli
from aidc.sched.snapshot import Allocation

GPUS = "gpus"
CPUS = "cpus"
MEMORY = "memory"
MODEL_PREFIX = "gpus:"  # "gpus:H100": GPUs of the model a queue's quota names H100
MILLI = 1000


def model_key(model: str) -> str:
    """The resource name of a per-model GPU quota."""
    return MODEL_PREFIX + model


@dataclass(frozen=True, slots=True)
class ResourceStanding:
    """One resource of one queue, in GPUs, CPUs or bytes of memory.

    `nominal` is the quota (None: no limit); `borrowed` is what the queue uses above it; `lent` is the
    part of its unused quota that other queues of its cohort are using (an estimate when several queues
    lend: the cohort's borrowing is shared among the lenders in proportion to what each has unused)."""

    resource: str  # "gpus", "gpus:MODEL", "cpus" or "memory"
    nominal: float | None
    used: float
    borrowed: float = 0.0
    lent: float = 0.0


@dataclass(frozen=True, slots=True)
class QueueStanding:
    """Where one queue stands against its quota, per resource (GPUs, GPU models, CPUs, memory)."""

    queue: str
    cohort: str | None
    resources: tuple[ResourceStanding, ...]

    @property
    def borrowing(self) -> bool:
        return any(r.borrowed > 0 for r in self.resources)

    def get(self, resource: str) -> ResourceStanding | None:
        return next((r for r in self.resources if r.resource == resource), None)


@dataclass(slots=True)
class _Limit:
    """A queue's limit on one resource, in exact units."""

    nominal: int
    borrow: int | None  # most it may use above nominal (None: no limit); unused without a cohort
    guaranteed: int  # the part of nominal it never lends
    lendable: int


@dataclass(slots=True)
class _Pool:
    """One resource of one cohort: what its queues lend in all, and what they use beyond their
    guaranteed parts (must stay <= lendable)."""

    lendable: int = 0
    over: int = 0


@dataclass(slots=True)
class _Book:
    name: str
    cohort: str | None
    limits: dict[str, _Limit]  # limited resources only, in display order
    used: dict[str, int] = field(default_factory=dict)
    model_keys: tuple[str, ...] = ()  # the GPU model names its quota caps


def _milli(amount: float) -> int:
    return round(amount * MILLI)


def _quota_amount(quota: Quota | None, key: str) -> int | None:
    """A quota's amount for one resource, in exact units (None: not given)."""
    if quota is None:
        return None
    if key == GPUS:
        return None if quota.gpus is None else _milli(quota.gpus)
    if key == CPUS:
        return None if quota.cpus is None else _milli(quota.cpus)
    if key == MEMORY:
        return quota.memory
    amount = quota.gpu_models.get(key[len(MODEL_PREFIX) :])
    return None if amount is None else _milli(amount)


def _format(key: str, amount: int) -> str:
    """An amount as people read it: GPUs and CPUs as numbers (0.25 for a quarter), memory as a size."""
    if key == MEMORY:
        return format_size(amount)
    if amount % MILLI == 0:
        return str(amount // MILLI)
    return f"{amount / MILLI:.3f}".rstrip("0")


def _noun(key: str) -> str:
    if key == GPUS:
        return "GPUs"
    if key == CPUS:
        return "CPUs"
    if key == MEMORY:
        return "memory"
    return f"{key[len(MODEL_PREFIX) :]} GPUs"


def _book_of(queue: Queue) -> _Book:
    quota = queue.quota
    keys = [GPUS, *(model_key(m) for m in quota.gpu_models), CPUS, MEMORY]
    limits: dict[str, _Limit] = {}
    for key in keys:
        nominal = _quota_amount(quota, key)
        if nominal is None:
            continue
        if queue.cohort is None:
            limits[key] = _Limit(nominal, None, nominal, 0)
            continue
        lending = _quota_amount(queue.lending_limit, key)
        lendable = nominal if lending is None else min(nominal, lending)
        limits[key] = _Limit(nominal, _quota_amount(queue.borrowing_limit, key), nominal - lendable, lendable)
    return _Book(queue.name, queue.cohort, limits, model_keys=tuple(quota.gpu_models))


class CohortLedger:
    """Per-queue usage during one cycle, checked against quotas, borrowing and lending in cohorts.

    Built from the running allocations (they count even when their nodes left the snapshot: they still
    hold the queue's share); the cycle then `check`s each job and `charge`s the ones it starts, so
    later checks see them. `gpu_model_of` names the GPU model an allocation uses, for per-model quotas;
    when it (or the `gpu_model` passed to a method) is None, the job's requested `gpu_type` stands in,
    and with neither, per-model quotas do not count the job."""

    def __init__(
        self,
        queues: Mapping[str, Queue],
        running: Iterable[Allocation] = (),
        gpu_model_of: Callable[[Allocation], str | None] | None = None,
    ) -> None:
        self._queues = queues
        self._books: dict[str, _Book] = {name: _book_of(queues[name]) for name in sorted(queues)}
        self._pools: dict[tuple[str, str], _Pool] = {}
        for book in self._books.values():
            if book.cohort is None:
                continue
            for key, limit in book.limits.items():
                pool = self._pools.setdefault((book.cohort, key), _Pool())
                pool.lendable += limit.lendable
        self._matches: dict[tuple[str, str], tuple[str, ...]] = {}
        for alloc in running:
            model = gpu_model_of(alloc) if gpu_model_of is not None else None
            self._count(alloc, model, 1)

    def copy(self) -> CohortLedger:
        """An independent ledger with the same usage (for what-if checks that must not touch this one).
        Queues are shared: they are frozen."""
        twin = CohortLedger.__new__(CohortLedger)
        twin._queues = self._queues
        twin._books = {
            name: _Book(b.name, b.cohort, b.limits, dict(b.used), b.model_keys) for name, b in self._books.items()
        }
        twin._pools = {key: _Pool(p.lendable, p.over) for key, p in self._pools.items()}
        twin._matches = self._matches  # depends on the queues and model names only
        return twin

    def __deepcopy__(self, memo: dict[int, object]) -> CohortLedger:
        return self.copy()

    # ------------------------------------------------------------------ updates

    def charge(self, queue: str, req: Request, gpu_model: str | None) -> None:
        """Count a job the cycle starts against `queue`."""
        book = self._book(queue)
        self._apply(book, self._request(book, req, gpu_model), 1)

    def uncharge(self, queue: str, req: Request, gpu_model: str | None) -> None:
        """Undo a `charge` (for what-if checks)."""
        book = self._book(queue)
        self._apply(book, self._request(book, req, gpu_model), -1)

    def add(self, alloc: Allocation, gpu_model: str | None) -> None:
        """Count a running allocation, as the constructor counts each of `running` (for a caller that
        keeps one ledger from cycle to cycle)."""
        self._count(alloc, gpu_model, 1)

    def release(self, alloc: Allocation, gpu_model: str | None) -> None:
        """Give back what a running allocation holds (e.g. a job about to be preempted)."""
        self._count(alloc, gpu_model, -1)

    def _count(self, alloc: Allocation, gpu_model: str | None, sign: int) -> None:
        res = alloc.resources
        nodes = len(alloc.placement.assignments)
        book = self._book(alloc.queue)
        gpus_m, cpus_m, memory = res.gpus * res.gpu_milli * nodes, to_milli(res.cpus) * nodes, res.memory * nodes
        amounts = self._amounts(book, gpus_m, cpus_m, memory, gpu_model or res.gpu_type)
        self._apply(book, amounts, sign)

    def _request(self, book: _Book, req: Request, gpu_model: str | None) -> list[tuple[str, int]]:
        n = req.num_nodes
        return self._amounts(
            book, req.gpus * req.gpu_milli * n, req.cpus_m * n, req.memory * n, gpu_model or req.gpu_type
        )

    def _book(self, queue: str) -> _Book:
        book = self._books.get(queue)
        if book is None:  # running work of a queue no longer configured: counted, never limited
            book = self._books[queue] = _Book(queue, None, {})
        return book

    def _amounts(self, book: _Book, gpus_m: int, cpus_m: int, memory: int, model: str | None) -> list[tuple[str, int]]:
        """(resource, amount) pairs in this queue's terms (GPU model quotas it names), zero amounts left
        out."""
        out: list[tuple[str, int]] = []
        if gpus_m:
            out.append((GPUS, gpus_m))
            if model is not None and book.model_keys:
                out.extend((key, gpus_m) for key in self._model_keys(book, model))
        if cpus_m:
            out.append((CPUS, cpus_m))
        if memory:
            out.append((MEMORY, memory))
        return out

    def _model_keys(self, book: _Book, model: str) -> tuple[str, ...]:
        cache_key = (book.name, model)
        keys = self._matches.get(cache_key)
        if keys is None:
            keys = self._matches[cache_key] = tuple(
                model_key(name) for name in book.model_keys if gpu_model_matches(name, model)
            )
        return keys

    def _apply(self, book: _Book, amounts: list[tuple[str, int]], sign: int) -> None:
        used = book.used
        for key, amount in amounts:
            before = used.get(key, 0)
            after = before + sign * amount
            used[key] = after
            limit = book.limits.get(key)
            if limit is not None and book.cohort is not None:
                g = limit.guaranteed
                self._pools[book.cohort, key].over += max(0, after - g) - max(0, before - g)

    # ------------------------------------------------------------------ questions

    def used(self, queue: str, resource: str = GPUS) -> int:
        """What `queue` uses of one resource, in exact units (milli-GPUs, milli-CPUs, bytes)."""
        book = self._books.get(queue)
        return book.used.get(resource, 0) if book else 0

    def check(self, queue: str, req: Request, gpu_model: str | None) -> str | None:
        """The wait reason when starting `req` in `queue` would break its quota, its borrowing limit or
        the cohort's lending; None when it may start."""
        if queue not in self._queues:
            return f"queue {queue} does not exist"
        book = self._books[queue]
        if not book.limits:
            return None
        limits = book.limits
        for key, need in self._request(book, req, gpu_model):
            limit = limits.get(key)
            if limit is not None and not self._fits(book, key, limit, need):
                return self._reason(book, key, limit, need)
        return None

    def _fits(self, book: _Book, key: str, limit: _Limit, need: int) -> bool:
        used = book.used.get(key, 0)
        after = used + need
        if book.cohort is None:
            return after <= limit.nominal
        if limit.borrow is not None and after > limit.nominal + limit.borrow:
            return False
        g = limit.guaranteed
        extra = max(0, after - g) - max(0, used - g)
        pool = self._pools[book.cohort, key]
        return pool.over + extra <= pool.lendable

    def _reason(self, book: _Book, key: str, limit: _Limit, need: int) -> str:
        """Why `need` more of resource `key` does not fit in `book`'s queue (built only when it does not:
        a cycle checks thousands of jobs)."""
        used = book.used.get(key, 0)
        after = used + need
        noun = _noun(key)
        quota_text = (
            f"queue {book.name} quota: {_format(key, used)} of {_format(key, limit.nominal)} {noun} in use,"
            f" job needs {_format(key, need)}"
        )
        if book.cohort is None:
            return quota_text
        if limit.borrow is not None and after > limit.nominal + limit.borrow:
            if used > limit.nominal:
                return (
                    f"queue {book.name}: borrowing limit reached ({_format(key, used - limit.nominal)} {noun}"
                    f" above its quota of {_format(key, limit.nominal)}, at most {_format(key, limit.borrow)}"
                    f" allowed), job needs {_format(key, need)}"
                )
            return f"{quota_text}; it may borrow at most {_format(key, limit.borrow)} {noun} above its quota"
        pool = self._pools[book.cohort, key]
        free = max(0, pool.lendable - pool.over)
        reachable = free + max(0, limit.guaranteed - used)  # what the queue could still add
        unused = max(0, limit.nominal - used)
        if after <= limit.nominal:
            return (
                f"{quota_text}; cohort {book.cohort} has lent {_format(key, unused - reachable)} of its"
                f" {_format(key, unused)} unused {noun} to other queues"
            )
        to_lend = max(0, reachable - unused)
        return f"{quota_text}; cohort {book.cohort} has {_format(key, to_lend)} {noun} to lend"

    def within_nominal(self, queue: str, req: Request, gpu_model: str | None) -> bool:
        """Would `queue` stay within its own quota (no borrowing) with `req` started? False for an
        unknown queue. The cohort may still have lent that quota out: see `check`."""
        book = self._books.get(queue)
        if book is None or queue not in self._queues:
            return False
        for key, need in self._request(book, req, gpu_model):
            limit = book.limits.get(key)
            if limit is not None and book.used.get(key, 0) + need > limit.nominal:
                return False
        return True

    def borrowing(self, queue: str) -> bool:
        """Does `queue` use more than its quota of some resource, borrowed from its cohort? (A queue
        without a cohort never borrows, even when its quota was lowered below what it uses.)"""
        book = self._books.get(queue)
        if book is None or book.cohort is None:
            return False
        return any(book.used.get(key, 0) > limit.nominal for key, limit in book.limits.items())

    def standing(self) -> dict[str, QueueStanding]:
        """Every queue's quota, use, borrowing and lending, by queue name (sorted)."""
        lent = self._lent()
        out: dict[str, QueueStanding] = {}
        for name in sorted(self._books):
            book = self._books[name]
            keys = [GPUS, *(model_key(m) for m in book.model_keys), CPUS, MEMORY]
            rows: list[ResourceStanding] = []
            for key in keys:
                limit = book.limits.get(key)
                used = book.used.get(key, 0)
                nominal = None if limit is None else limit.nominal
                borrowed = 0 if nominal is None or book.cohort is None else max(0, used - nominal)
                rows.append(
                    ResourceStanding(
                        key,
                        None if nominal is None else _natural(key, nominal),
                        _natural(key, used),
                        _natural(key, borrowed),
                        _natural(key, lent.get((name, key), 0)),
                    )
                )
            out[name] = QueueStanding(name, book.cohort, tuple(rows))
        return out

    def _lent(self) -> dict[tuple[str, str], int]:
        """Per (queue, resource): its estimated share of what its cohort's borrowers use, in proportion
        to the unused lendable quota of each lender."""
        borrowed: dict[tuple[str, str], int] = {}
        unused: dict[tuple[str, str], list[tuple[str, int]]] = {}
        for book in self._books.values():
            if book.cohort is None:
                continue
            for key, limit in book.limits.items():
                used = book.used.get(key, 0)
                pool_key = (book.cohort, key)
                borrowed[pool_key] = borrowed.get(pool_key, 0) + max(0, used - limit.nominal)
                spare = max(0, limit.lendable - max(0, used - limit.guaranteed))
                unused.setdefault(pool_key, []).append((book.name, spare))
        out: dict[tuple[str, str], int] = {}
        for pool_key, lenders in unused.items():
            total = sum(spare for _, spare in lenders)
            taken = min(borrowed.get(pool_key, 0), total)
            if not taken:
                continue
            for name, spare in lenders:
                out[name, pool_key[1]] = taken * spare // total
        return out


def _natural(key: str, amount: int) -> float:
    """Exact units back to GPUs, CPUs or bytes."""
    return amount if key == MEMORY else amount / MILLI

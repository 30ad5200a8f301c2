"""A campaign budget shared by every request and worker: atomic reservations, paced spend.

Money is counted in integer ledger units (``MONEY_SCALE`` per currency unit, amounts
rounded up), so "never overspent" is exact arithmetic, not a float tolerance. A reservation
offers a unit's arms in order of preference; the store grants the first that fits within
the arm's capacity, the campaign budget and the spend allowed so far by the pacing, all in
one atomic step (SQLite ``BEGIN IMMEDIATE``, or one Redis Lua script).

With a separate exposure log the protocol is reserve -> log -> confirm: a reservation stays
*pending* until its exposure row is written, and pending ones whose worker died are settled
at startup by :meth:`BudgetStore.reconcile` (released unless the log has the decision).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import numpy as np

from liftwise.decide.guardrails import Reason
from liftwise.errors import UserError
from liftwise.serve.sqlite import SqliteDatabase

MONEY_SCALE = 1000  # ledger units per currency unit
MAX_LEDGER_UNITS = 2**53  # Redis Lua compares doubles: exact below 2**53


def to_ledger_units(amount: Any) -> Any:
    """Currency -> ledger units (an int, or int64 for an array), rounded up so a reservation
    never understates a cost; rounding to 6 decimals first absorbs float noise (0.1 * 3)."""
    units = np.ceil(np.round(np.asarray(amount, dtype=np.float64) * MONEY_SCALE, 6))
    return units.astype(np.int64) if units.ndim else int(units)


def from_ledger_units(units: int) -> float:
    return units / MONEY_SCALE


@dataclass(frozen=True)
class Offer:
    """A unit's candidate arms, most preferred first, with each arm's cost in ledger units;
    ``key`` (the decision id) names the reservation."""

    key: str
    arms: tuple[str, ...]
    amounts: tuple[int, ...]


@dataclass(frozen=True)
class Grant:
    """Which of the offer's arms was granted (-1: none) and, if none, why the preferred arm
    was refused (CAPACITY, BUDGET or PACING)."""

    choice: int
    reason: Reason
    amount: int = 0


@dataclass(frozen=True)
class Limits:
    """What may be spent now: the campaign total, the paced allowance, units per arm."""

    total: int
    paced: int
    capacity: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Pacing:
    """Allowed spend over the campaign window: linear from 0 at the start to the whole
    budget at the end; the whole budget at once without a window."""

    total: int  # ledger units
    window: tuple[dt.datetime, dt.datetime] | None = None
    capacity: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.total >= MAX_LEDGER_UNITS:
            raise UserError(
                f"budget too large for exact accounting (max {MAX_LEDGER_UNITS / MONEY_SCALE:.3g})",
                parameter="budget",
            )

    def allowance(self, now: dt.datetime) -> int:
        """Ledger units that may have been spent by ``now`` (naive UTC)."""
        if self.window is None:
            return self.total
        start, end = self.window
        share = (now - start) / (end - start)
        return math.floor(self.total * min(max(share, 0.0), 1.0))

    def limits(self, now: dt.datetime) -> Limits:
        return Limits(total=self.total, paced=self.allowance(now), capacity=self.capacity)


@dataclass(frozen=True)
class BudgetState:
    spent: int
    units: dict[str, int]
    pending: int


def grant_offers(
    offers: Sequence[Offer], limits: Limits, spent: int, units: dict[str, int]
) -> tuple[list[Grant], int]:
    """The reservation rule, applied in order: the first arm of each offer that fits gets it.

    Mutates ``units``; returns the grants and the new spent total. The SQLite store runs this
    inside its write transaction; the Redis Lua script is a line-by-line translation."""
    grants: list[Grant] = []
    for offer in offers:
        refused = Reason.TREATED
        granted = -1
        for j, (arm, amount) in enumerate(zip(offer.arms, offer.amounts, strict=True)):
            cap = limits.capacity.get(arm)
            if cap is not None and units.get(arm, 0) >= cap:
                reason = Reason.CAPACITY
            elif spent + amount > limits.total:
                reason = Reason.BUDGET
            elif spent + amount > limits.paced:
                reason = Reason.PACING
            else:
                granted, spent = j, spent + amount
                units[arm] = units.get(arm, 0) + 1
                break
            if j == 0:
                refused = reason
        grants.append(
            Grant(granted, Reason.TREATED, offer.amounts[granted])
            if granted >= 0
            else Grant(-1, refused)
        )
    return grants, spent


class BudgetStore(Protocol):
    """Atomic reservations against one campaign's budget, shared by every worker."""

    def reserve(
        self, offers: Sequence[Offer], limits: Limits, now_us: int, *, pending: bool = True
    ) -> list[Grant]: ...

    def confirm(self, keys: Sequence[str]) -> None: ...

    def release(self, keys: Sequence[str]) -> None: ...

    def state(self) -> BudgetState: ...

    def pending(self) -> dict[str, int]:
        """Pending reservations: key -> reserved-at (microseconds)."""
        ...

    def reconcile(self, logged: Callable[[list[str]], set[str]], before_us: int) -> int: ...

    def ping(self) -> None: ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------- SQLite


class SqliteBudget:
    """Budget ledger tables in a SQLite file; the exposure log may share the file (and then
    the transaction, see ``serve.ledger``)."""

    def __init__(self, db: SqliteDatabase, campaign: str) -> None:
        self.db = db
        self.campaign = campaign
        with db.transaction() as conn:
            self.create(conn)

    def create(self, conn: sqlite3.Connection) -> None:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS budget_spent "
            "(campaign TEXT PRIMARY KEY, spent INTEGER NOT NULL)"
        )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS budget_units (campaign TEXT NOT NULL, arm TEXT NOT NULL, "
            "units INTEGER NOT NULL, PRIMARY KEY (campaign, arm))"
        )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS budget_pending (key TEXT PRIMARY KEY, campaign TEXT "
            "NOT NULL, arm TEXT NOT NULL, amount INTEGER NOT NULL, reserved_at INTEGER NOT NULL)"
        )

    def reserve_in(
        self,
        conn: sqlite3.Connection,
        offers: Sequence[Offer],
        limits: Limits,
        now_us: int,
        *,
        pending: bool,
    ) -> list[Grant]:
        """Reserve inside the caller's write transaction."""
        row = conn.execute(
            "SELECT spent FROM budget_spent WHERE campaign = ?", (self.campaign,)
        ).fetchone()
        spent = int(row[0]) if row else 0
        units = dict(
            conn.execute(
                "SELECT arm, units FROM budget_units WHERE campaign = ?", (self.campaign,)
            ).fetchall()
        )
        before = dict(units)
        grants, new_spent = grant_offers(offers, limits, spent, units)
        if any(g.choice >= 0 for g in grants):
            conn.execute(
                "INSERT INTO budget_spent (campaign, spent) VALUES (?, ?) "
                "ON CONFLICT (campaign) DO UPDATE SET spent = excluded.spent",
                (self.campaign, new_spent),
            )
            conn.executemany(
                "INSERT INTO budget_units (campaign, arm, units) VALUES (?, ?, ?) "
                "ON CONFLICT (campaign, arm) DO UPDATE SET units = excluded.units",
                [(self.campaign, a, n) for a, n in units.items() if before.get(a) != n],
            )
            if pending:
                conn.executemany(
                    "INSERT INTO budget_pending (key, campaign, arm, amount, reserved_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [
                        (o.key, self.campaign, o.arms[g.choice], g.amount, now_us)
                        for o, g in zip(offers, grants, strict=True)
                        if g.choice >= 0
                    ],
                )
        return grants

    def reserve(
        self, offers: Sequence[Offer], limits: Limits, now_us: int, *, pending: bool = True
    ) -> list[Grant]:
        with self.db.transaction() as conn:
            return self.reserve_in(conn, offers, limits, now_us, pending=pending)

    def confirm(self, keys: Sequence[str]) -> None:
        if keys:
            with self.db.transaction() as conn:
                conn.executemany("DELETE FROM budget_pending WHERE key = ?", [(k,) for k in keys])

    def release(self, keys: Sequence[str]) -> None:
        if not keys:
            return
        with self.db.transaction() as conn:
            for key in keys:
                row = conn.execute(
                    "DELETE FROM budget_pending WHERE key = ? AND campaign = ? "
                    "RETURNING arm, amount",
                    (key, self.campaign),
                ).fetchone()
                if row is None:
                    continue
                conn.execute(
                    "UPDATE budget_spent SET spent = spent - ? WHERE campaign = ?",
                    (row[1], self.campaign),
                )
                conn.execute(
                    "UPDATE budget_units SET units = units - 1 WHERE campaign = ? AND arm = ?",
                    (self.campaign, row[0]),
                )

    def state(self) -> BudgetState:
        conn = self.db.connection()
        row = conn.execute(
            "SELECT spent FROM budget_spent WHERE campaign = ?", (self.campaign,)
        ).fetchone()
        units = conn.execute(
            "SELECT arm, units FROM budget_units WHERE campaign = ?", (self.campaign,)
        ).fetchall()
        pending = conn.execute(
            "SELECT count(*) FROM budget_pending WHERE campaign = ?", (self.campaign,)
        ).fetchone()
        return BudgetState(int(row[0]) if row else 0, dict(units), int(pending[0]))

    def pending(self) -> dict[str, int]:
        rows = self.db.connection().execute(
            "SELECT key, reserved_at FROM budget_pending WHERE campaign = ?", (self.campaign,)
        )
        return dict(rows.fetchall())

    def reconcile(self, logged: Callable[[list[str]], set[str]], before_us: int) -> int:
        return _reconcile(self, logged, before_us)

    def ping(self) -> None:
        self.db.connection().execute("SELECT 1").fetchone()

    def close(self) -> None:
        self.db.close()


def _reconcile(store: BudgetStore, logged: Callable[[list[str]], set[str]], before_us: int) -> int:
    """Settle pending reservations older than ``before_us``: confirm those the exposure log
    holds, release the rest. Returns how many were released."""
    stale = [key for key, at in store.pending().items() if at < before_us]
    if not stale:
        return 0
    written = logged(stale)
    store.confirm([k for k in stale if k in written])
    orphans = [k for k in stale if k not in written]
    store.release(orphans)
    return len(orphans)


# --------------------------------------------------------------------------- Redis

# grant_offers in Lua. Amounts travel as strings: Lua formats numbers with 14 significant
# digits, so they must never round-trip through a Lua number into a Redis command.
_RESERVE_LUA = """
local offers = cjson.decode(ARGV[1])
local total = tonumber(ARGV[2])
local paced = tonumber(ARGV[3])
local caps = cjson.decode(ARGV[4])
local now = ARGV[5]
local pending = ARGV[6] == '1'
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
local units = {}
local out = {}
for i, offer in ipairs(offers) do
  local key, arms, amounts = offer[1], offer[2], offer[3]
  local choice, refused = -1, 0
  for j = 1, #arms do
    local arm, amount = arms[j], tonumber(amounts[j])
    if units[arm] == nil then units[arm] = tonumber(redis.call('HGET', KEYS[2], arm) or '0') end
    local reason = 0
    local cap = caps[arm]
    if cap ~= nil and units[arm] >= cap then reason = 6
    elseif spent + amount > total then reason = 7
    elseif spent + amount > paced then reason = 8 end
    if reason == 0 then
      choice = j - 1
      spent = spent + amount
      units[arm] = units[arm] + 1
      redis.call('INCRBY', KEYS[1], amounts[j])
      redis.call('HINCRBY', KEYS[2], arm, 1)
      if pending then
        redis.call('HSET', KEYS[3], key, arm .. '|' .. amounts[j] .. '|' .. now)
      end
      break
    end
    if j == 1 then refused = reason end
  end
  out[i] = {choice, refused}
end
return out
"""

_RELEASE_LUA = """
local released = 0
for i = 1, #ARGV do
  local value = redis.call('HGET', KEYS[3], ARGV[i])
  if value then
    local arm, amount = string.match(value, '^(.*)|(%d+)|%d+$')
    redis.call('DECRBY', KEYS[1], amount)
    redis.call('HINCRBY', KEYS[2], arm, -1)
    redis.call('HDEL', KEYS[3], ARGV[i])
    released = released + 1
  end
end
return released
"""


class RedisBudget:
    """The budget in Redis: ``{campaign}:spent``, ``:units`` (hash), ``:pending`` (hash);
    every reservation is one Lua script, so concurrent workers never overspend."""

    def __init__(self, url: str, campaign: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url)
        self.prefix = f"liftwise:budget:{{{campaign}}}"
        self.keys = [f"{self.prefix}:spent", f"{self.prefix}:units", f"{self.prefix}:pending"]
        try:
            self._reserve = self.client.register_script(_RESERVE_LUA)
            self._release = self.client.register_script(_RELEASE_LUA)
            self.client.ping()
        except redis.RedisError as err:
            raise UserError(f"cannot reach Redis at {url}: {err}", parameter="redis_url") from None

    def reserve(
        self, offers: Sequence[Offer], limits: Limits, now_us: int, *, pending: bool = True
    ) -> list[Grant]:
        if not offers:
            return []
        payload = json.dumps([[o.key, o.arms, [str(a) for a in o.amounts]] for o in offers])
        capacity = json.dumps(limits.capacity) if limits.capacity else "{}"
        raw = self._reserve(
            keys=self.keys,
            args=[payload, limits.total, limits.paced, capacity, now_us, int(pending)],
        )
        return [
            Grant(int(c), Reason.TREATED, o.amounts[int(c)])
            if int(c) >= 0
            else Grant(-1, Reason(int(r)))
            for o, (c, r) in zip(offers, raw, strict=True)
        ]

    def confirm(self, keys: Sequence[str]) -> None:
        if keys:
            self.client.hdel(self.keys[2], *keys)

    def release(self, keys: Sequence[str]) -> None:
        if keys:
            self._release(keys=self.keys, args=list(keys))

    def state(self) -> BudgetState:
        pipe = self.client.pipeline()  # one round trip for the three reads
        pipe.get(self.keys[0])
        pipe.hgetall(self.keys[1])
        pipe.hlen(self.keys[2])
        spent, units, pending = pipe.execute()
        return BudgetState(
            int(spent or 0), {k.decode(): int(v) for k, v in units.items()}, int(pending)
        )

    def pending(self) -> dict[str, int]:
        return {
            k.decode(): int(v.decode().rsplit("|", 1)[1])
            for k, v in cast("dict[bytes, bytes]", self.client.hgetall(self.keys[2])).items()
        }

    def reconcile(self, logged: Callable[[list[str]], set[str]], before_us: int) -> int:
        return _reconcile(self, logged, before_us)

    def ping(self) -> None:
        self.client.ping()

    def reset(self) -> None:
        """Forget the campaign's spend (tests and new campaigns under a reused name)."""
        self.client.delete(*self.keys)

    def close(self) -> None:
        self.client.close()

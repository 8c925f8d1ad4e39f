"""The Redis read model of scores: what the leaderboard, the dashboard and ``redis rebuild`` use.

Key layout (``{p}`` is the prefix, ``{app_id}:rm`` by default; one standalone Redis, not Cluster,
since the scripts touch keys they derive from the data):

| key | type | content |
| --- | --- | --- |
| ``{p}:score:{model}:{lead_id}`` | hash | the latest ``ScoreUpdated`` (top_rules as JSON) |
| ``{p}:board:{model}`` | sorted set | lead_id scored by total |
| ``{p}:board:{model}:{stage}`` | sorted set | the same, for the leads in that stage |
| ``{p}:stages:{model}`` | hash | stage → number of leads in it |
| ``{p}:models`` | set | every model seen |
| ``{p}:lead-models:{lead_id}`` | set | the models that score this lead |
| ``{p}:history:{lead_id}`` | sorted set | its last `HISTORY_MAX` stage changes (JSON) |
| ``{p}:changes:{model}`` | hash | ``from>to`` → stage changes counted |
| ``{p}:changes-minute:{minute}`` | string | stage changes of that event-time minute (expires) |
| ``{p}:dead-letters`` | hash | error kind → dead letters counted |
| ``{p}:seen:{event_id}`` | string | a stage change or dead letter already counted (expires) |
| ``{p}:account:{account_id}`` | hash | ``revision``, ``doc``: the latest ``AccountScoreUpdated`` |
| ``{p}:account-board`` | sorted set | account_id scored by account score |
| ``{p}:account-history:{account_id}`` | sorted set | its last `HISTORY_MAX` stage changes (JSON) |
| ``{p}:marker`` | string | set by every write: its absence means Redis lost the read model |

Every write is a Lua script, so each record is applied atomically, and a batch of records is sent
in one pipeline. Scores are guarded by ``revision``: a record whose revision is not higher than
the stored one changes nothing, so replays never move a lead backwards or count it twice, and
stage counts move exactly when a lead's stage does (old stage -1, new stage +1). Counters of
stage changes and dead letters skip event ids seen in the last `SEEN_TTL_SECONDS`. An erasure
(``LeadErasedRecord`` or a tombstone on the scores topic) removes the lead everywhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson
from redis.exceptions import NoScriptError

from schemas.outputs import (
    AccountScoreUpdated,
    AccountStageChanged,
    DeadLetter,
    LeadErasedRecord,
    ScoreUpdated,
    StageChanged,
)

__all__ = [
    "HISTORY_MAX",
    "SEEN_TTL_SECONDS",
    "Applied",
    "Erase",
    "ReadModel",
    "Write",
    "prefix_for",
    "score_row",
]

HISTORY_MAX: Final = 50
SEEN_TTL_SECONDS: Final = 7 * 24 * 3600
MINUTE_TTL_SECONDS: Final = 3 * 3600

_APPLY_SCORE = """
local p, model, lead, stage = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local revision, total = tonumber(ARGV[5]), ARGV[6]
local h = p .. ':score:' .. model .. ':' .. lead
local current = redis.call('HGET', h, 'revision')
if current and tonumber(current) >= revision then return 0 end
local old = redis.call('HGET', h, 'stage')
redis.call('HSET', h, 'stage', stage, 'revision', ARGV[5], 'total', total,
  'fit', ARGV[7], 'engagement', ARGV[8], 'grade', ARGV[9], 'as_of', ARGV[10],
  'model_version', ARGV[11], 'top_rules', ARGV[12], 'model', model, 'lead_id', lead)
if old ~= stage then
  if old then
    redis.call('HINCRBY', p .. ':stages:' .. model, old, -1)
    redis.call('ZREM', p .. ':board:' .. model .. ':' .. old, lead)
  end
  redis.call('HINCRBY', p .. ':stages:' .. model, stage, 1)
end
redis.call('ZADD', p .. ':board:' .. model, total, lead)
redis.call('ZADD', p .. ':board:' .. model .. ':' .. stage, total, lead)
redis.call('SADD', p .. ':models', model)
redis.call('SADD', p .. ':lead-models:' .. lead, model)
return 1
"""

_ERASE = """
local p, model, lead = ARGV[1], ARGV[2], ARGV[3]
local h = p .. ':score:' .. model .. ':' .. lead
local old = redis.call('HGET', h, 'stage')
if old then
  redis.call('HINCRBY', p .. ':stages:' .. model, old, -1)
  redis.call('ZREM', p .. ':board:' .. model .. ':' .. old, lead)
end
redis.call('ZREM', p .. ':board:' .. model, lead)
redis.call('DEL', h)
redis.call('SREM', p .. ':lead-models:' .. lead, model)
if redis.call('SCARD', p .. ':lead-models:' .. lead) == 0 then
  redis.call('DEL', p .. ':history:' .. lead)
else
  for _, doc in ipairs(redis.call('ZRANGE', p .. ':history:' .. lead, 0, -1)) do
    if cjson.decode(doc)['model'] == model then
      redis.call('ZREM', p .. ':history:' .. lead, doc)
    end
  end
end
if old then return 1 end
return 0
"""

_STAGE_CHANGE = """
local p, lead, model, event_id = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local doc, at, transition, minute = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local history_max, seen_ttl, minute_ttl = tonumber(ARGV[9]), ARGV[10], ARGV[11]
local hist = p .. ':history:' .. lead
redis.call('ZADD', hist, at, doc)
redis.call('ZREMRANGEBYRANK', hist, 0, -(history_max + 1))
if not redis.call('SET', p .. ':seen:' .. event_id, '1', 'NX', 'EX', seen_ttl) then
  return 0
end
redis.call('HINCRBY', p .. ':changes:' .. model, transition, 1)
local m = p .. ':changes-minute:' .. minute
redis.call('INCR', m)
redis.call('EXPIRE', m, minute_ttl)
return 1
"""

_ACCOUNT_SCORE = """
local p, account, revision, score, doc = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local h = p .. ':account:' .. account
local current = redis.call('HGET', h, 'revision')
if current and tonumber(current) >= revision then return 0 end
redis.call('HSET', h, 'revision', ARGV[3], 'doc', doc)
if tonumber(ARGV[6]) > 0 then
  redis.call('ZADD', p .. ':account-board', score, account)
else
  redis.call('ZREM', p .. ':account-board', account)
end
return 1
"""

_ACCOUNT_STAGE_CHANGE = """
local p, account, doc, at, history_max = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local hist = p .. ':account-history:' .. account
local added = redis.call('ZADD', hist, at, doc)
redis.call('ZREMRANGEBYRANK', hist, 0, -(history_max + 1))
return added
"""

_DEAD_LETTER = """
local p, id, kind, seen_ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if not redis.call('SET', p .. ':seen:' .. id, '1', 'NX', 'EX', seen_ttl) then return 0 end
redis.call('HINCRBY', p .. ':dead-letters', kind, 1)
return 1
"""


@dataclass(frozen=True, slots=True)
class Erase:
    """Remove a lead's score under a model (and its stage history) from the read model."""

    lead_id: str
    model: str


Write = (
    ScoreUpdated
    | StageChanged
    | LeadErasedRecord
    | DeadLetter
    | Erase
    | AccountScoreUpdated
    | AccountStageChanged
)
"""What the read model applies: records of the scores, stage-changes, dead-letter and account
topics."""


@dataclass(frozen=True, slots=True)
class Applied:
    """What `ReadModel.apply` did: whether the read model was there before, and per write 1 if
    it changed something."""

    had_marker: bool
    changed: list[int]


def prefix_for(settings: Any) -> str:
    """The read model's key prefix in an environment: ``{app_id}:rm``."""
    return f"{settings.app_id}:rm"


def _number(value: float) -> str:
    return repr(float(value))


class ReadModel:
    """Writes and reads the Redis read model through a ``redis.asyncio.Redis`` client."""

    def __init__(self, redis: Any, *, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._scripts = {
            name: (hashlib.sha1(body.encode()).hexdigest(), body)  # noqa: S324  (Redis' id)
            for name, body in (
                ("score", _APPLY_SCORE),
                ("erase", _ERASE),
                ("stage_change", _STAGE_CHANGE),
                ("dead_letter", _DEAD_LETTER),
                ("account_score", _ACCOUNT_SCORE),
                ("account_stage_change", _ACCOUNT_STAGE_CHANGE),
            )
        }

    def _call(self, pipe: Any, script: str, args: Sequence[object]) -> None:
        pipe.evalsha(self._scripts[script][0], 0, *args)

    async def load_scripts(self) -> None:
        """Load the scripts into Redis (again after a restart, which forgets them)."""
        for _sha, body in self._scripts.values():
            await self.redis.script_load(body)

    @classmethod
    def from_settings(cls, settings: Any) -> ReadModel:
        import redis.asyncio  # noqa: PLC0415

        client = redis.asyncio.Redis.from_url(
            settings.redis_url.get_secret_value(),
            socket_connect_timeout=2.0,
            socket_timeout=5.0,
        )
        return cls(client, prefix=prefix_for(settings))

    async def close(self) -> None:
        await self.redis.aclose()

    # ------------------------------------------------------------------ writes

    @property
    def marker(self) -> str:
        return f"{self.prefix}:marker"

    async def apply(self, writes: Sequence[Write]) -> Applied:
        """Apply `writes` in order, in one pipeline.

        The pipeline first asks whether the marker key exists and ends by setting it: a Redis
        that lost its data (restarted without persistence, flushed) is noticed on the first
        batch written to it, and the caller replays its topics from the beginning.
        """
        results = await self._execute(writes)
        if any(isinstance(r, NoScriptError) for r in results):
            # Redis forgot the scripts (it restarted): load them and apply again (idempotent).
            await self.load_scripts()
            results = [results[0], *(await self._execute(writes))[1:]]
        for result in results:
            if isinstance(result, Exception):
                raise result
        return Applied(bool(results[0]), [int(r or 0) for r in results[1:-1]])

    async def _execute(self, writes: Sequence[Write]) -> list[Any]:
        pipe = self.redis.pipeline(transaction=False)
        pipe.exists(self.marker)
        for write in writes:
            self._queue(pipe, write)
        pipe.set(self.marker, b"1")
        results: list[Any] = await pipe.execute(raise_on_error=False)
        return results

    def _queue(self, pipe: Any, write: Write) -> None:
        p = self.prefix
        if isinstance(write, ScoreUpdated):
            top = orjson.dumps([[r.rule_id, r.points] for r in write.top_rules]).decode()
            self._call(
                pipe,
                "score",
                [
                    p,
                    write.model,
                    write.lead_id,
                    write.stage.value,
                    write.revision,
                    _number(write.total),
                    _number(write.fit),
                    _number(write.engagement),
                    write.grade,
                    write.as_of.isoformat(),
                    write.model_version,
                    top,
                ],
            )
        elif isinstance(write, LeadErasedRecord | Erase):
            self._call(pipe, "erase", [p, write.model, write.lead_id])
        elif isinstance(write, StageChanged):
            doc = orjson.dumps(
                {
                    "event_id": str(write.event_id),
                    "model": write.model,
                    "from_stage": write.from_stage.value if write.from_stage else None,
                    "to_stage": write.to_stage.value,
                    "reason": write.reason,
                    "occurred_at": write.occurred_at.isoformat(),
                    "total": write.score.total,
                },
                option=orjson.OPT_SORT_KEYS,
            ).decode()
            at = write.occurred_at.timestamp()
            from_stage = write.from_stage.value if write.from_stage else "none"
            self._call(
                pipe,
                "stage_change",
                [
                    p,
                    write.lead_id,
                    write.model,
                    str(write.event_id),
                    doc,
                    repr(at),
                    f"{from_stage}>{write.to_stage.value}",
                    int(at // 60),
                    HISTORY_MAX,
                    SEEN_TTL_SECONDS,
                    MINUTE_TTL_SECONDS,
                ],
            )
        elif isinstance(write, AccountScoreUpdated):
            doc = orjson.dumps(write.model_dump(mode="json")).decode()
            self._call(
                pipe,
                "account_score",
                [p, write.account_id, write.revision, _number(write.score), doc, write.members],
            )
        elif isinstance(write, AccountStageChanged):
            change = orjson.dumps(write.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
            moment = repr(write.occurred_at.timestamp())
            self._call(
                pipe,
                "account_stage_change",
                [p, write.account_id, change.decode(), moment, HISTORY_MAX],
            )
        else:
            letter_id = f"dl:{write.source_topic}:{write.partition}:{write.offset}"
            self._call(
                pipe, "dead_letter", [p, letter_id, write.error_kind.value, SEEN_TTL_SECONDS]
            )

    async def clear(self) -> int:
        """Delete every key of the read model (before a rebuild); how many were deleted."""
        deleted = 0
        batch: list[bytes] = []
        async for key in self.redis.scan_iter(match=f"{self.prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += int(await self.redis.delete(*batch))
                batch = []
        if batch:
            deleted += int(await self.redis.delete(*batch))
        return deleted

    # ------------------------------------------------------------------ reads

    async def models(self) -> list[str]:
        return sorted(m.decode() for m in await self.redis.smembers(f"{self.prefix}:models"))

    async def leaderboard(
        self, model: str, *, stage: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """The `limit` leads with the highest totals under `model` (in `stage` if given)."""
        board = f"{self.prefix}:board:{model}" + (f":{stage}" if stage else "")
        leads = await self.redis.zrevrange(board, 0, limit - 1)
        if not leads:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for lead in leads:
            pipe.hgetall(f"{self.prefix}:score:{model}:{lead.decode()}")
        rows = []
        for lead, fields in zip(leads, await pipe.execute(), strict=True):
            if fields:
                rows.append(score_row(lead.decode(), fields))
        return rows

    async def score(self, model: str, lead_id: str) -> dict[str, Any] | None:
        fields = await self.redis.hgetall(f"{self.prefix}:score:{model}:{lead_id}")
        return score_row(lead_id, fields) if fields else None

    async def stage_counts(self, model: str) -> dict[str, int]:
        raw = await self.redis.hgetall(f"{self.prefix}:stages:{model}")
        counts = {k.decode(): int(v) for k, v in raw.items()}
        return {stage: n for stage, n in counts.items() if n > 0}

    async def totals(self, model: str) -> list[float]:
        """Every lead's total under `model` (for the score distribution)."""
        pairs = await self.redis.zrange(f"{self.prefix}:board:{model}", 0, -1, withscores=True)
        return [float(score) for _, score in pairs]

    async def history(self, lead_id: str) -> list[dict[str, Any]]:
        """The lead's last stage changes, oldest first."""
        docs = await self.redis.zrange(f"{self.prefix}:history:{lead_id}", 0, -1)
        return [orjson.loads(doc) for doc in docs]

    async def transitions(self, model: str) -> dict[str, int]:
        raw = await self.redis.hgetall(f"{self.prefix}:changes:{model}")
        return {k.decode(): int(v) for k, v in raw.items()}

    async def changes_per_minute(self, last_minute: int, minutes: int) -> list[tuple[int, int]]:
        """(minute, stage changes) for the `minutes` event-time minutes up to `last_minute`."""
        wanted = list(range(last_minute - minutes + 1, last_minute + 1))
        values = await self.redis.mget([f"{self.prefix}:changes-minute:{m}" for m in wanted])
        return [(m, int(v or 0)) for m, v in zip(wanted, values, strict=True)]

    async def account(self, account_id: str) -> dict[str, Any] | None:
        """The account's latest score record, with its last stage changes (oldest first)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hget(f"{self.prefix}:account:{account_id}", "doc")
        pipe.zrange(f"{self.prefix}:account-history:{account_id}", 0, -1)
        doc, history = await pipe.execute()
        if doc is None:
            return None
        return {**orjson.loads(doc), "stage_changes": [orjson.loads(h) for h in history]}

    async def top_accounts(self, limit: int = 50) -> list[dict[str, Any]]:
        """The `limit` accounts with the highest scores (accounts with no members left out)."""
        accounts = await self.redis.zrevrange(f"{self.prefix}:account-board", 0, limit - 1)
        if not accounts:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for account in accounts:
            pipe.hget(f"{self.prefix}:account:{account.decode()}", "doc")
        return [orjson.loads(doc) for doc in await pipe.execute() if doc is not None]

    async def dead_letters(self) -> dict[str, int]:
        raw = await self.redis.hgetall(f"{self.prefix}:dead-letters")
        return {k.decode(): int(v) for k, v in raw.items()}


def score_row(lead_id: str, fields: dict[bytes, bytes]) -> dict[str, Any]:
    """A score hash as the API shows it."""
    text = {k.decode(): v.decode() for k, v in fields.items()}
    return {
        "lead_id": lead_id,
        "model": text.get("model"),
        "model_version": text.get("model_version"),
        "fit": float(text.get("fit", 0)),
        "engagement": float(text.get("engagement", 0)),
        "total": float(text.get("total", 0)),
        "grade": text.get("grade"),
        "stage": text.get("stage"),
        "as_of": text.get("as_of"),
        "revision": int(text.get("revision", 0)),
        "top_rules": [
            {"rule_id": rule, "points": points}
            for rule, points in orjson.loads(text.get("top_rules", "[]"))
        ],
    }

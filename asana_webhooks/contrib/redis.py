"""An inbox and a secret store in Redis, shared by receivers and workers on many machines.

``RedisInbox`` implements the ``Inbox`` protocol and ``RedisSecretStore`` the ``SecretStore``
protocol. Needs the ``redis`` extra (``pip install 'asana-webhooks[redis]'``); redis-py is
imported when one of them is first built, never by ``import asana_webhooks``.

Every change is one Lua script, which Redis runs atomically: a delivery's events are stored
with their dedupe keys all at once or not at all, and a claim cannot be taken by two workers.
Claims are leases kept in a sorted set by expiry (rq's registry pattern): a worker that dies
leaves its claim to run out, and the next ``claim`` by any worker puts those events back.
Events whose handler failed wait in a second sorted set until their retry is due.

Keys of one inbox (all start with ``<prefix>:inbox:``)::

    seq             INCR counter giving each stored event its id (arrival order)
    ev:<id>         hash: key, target, received_at, raw, attempts, error, delivery (first id
                    of the delivery it came in, to keep a delivery together in one claim)
    keys            hash: event key -> id, for dedupe (until pruned after the window)
    q:<target>      sorted set: the target's ids ready to claim, by id
    ready           sorted set: targets with ids ready to claim, by their oldest such id
    open            sorted set: ids not yet handled nor parked, by received_at
    delayed         sorted set: ids waiting to retry, by when the retry is due
    claims          sorted set: claim tokens, by lease expiry
    claim:<token>   list: the ids one claim still holds
    inflight        hash: id -> token of the claim holding it
    failed          sorted set: parked ids, by id
    handled         sorted set: keys of handled (or purged) events, by when, for prune
    stats           hash: counters (stored, duplicates, handled, retried, parked, gaps)
    sync            hash: resource gid -> Events API sync token
    sync_at         hash: resource gid -> "<stored_at> <covered_since>" of that token
    gaps            hash: resource gid -> when its last gap began

To run on Redis Cluster, put a hash tag in the prefix (``prefix="{asana_webhooks}"``) so that
all keys of one inbox live in one slot.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Sequence, TypeVar, Union
from urllib.parse import parse_qsl, urlencode

from asana_webhooks._errors import AsanaError
from asana_webhooks._inbox import (
    DEFAULT_DEDUPE_WINDOW,
    LEASE_LOST,
    Claim,
    InboxError,
    InboxStats,
    StoredEvent,
    StoreResult,
    SyncState,
    event_key,
    polled_target,
)
from asana_webhooks._secrets import (
    ANNOUNCEMENT_GRACE,
    DEFAULT_ANNOUNCEMENT_TTL,
    Contact,
    new_announcement_id,
    target_key,
)

if TYPE_CHECKING:
    import redis

__all__ = ["RedisInbox", "RedisSecretStore", "RedisSecretStoreError"]

#: Seconds to wait to connect and for each answer. A call may reconnect once (a pooled
#: connection the server dropped), so a whole call stays well inside Asana's 10 seconds.
DEFAULT_TIMEOUT = 2.0

#: What every key starts with, unless a ``prefix`` (or a URL's ``?prefix=``) says otherwise.
DEFAULT_PREFIX = "asana_webhooks"

_T = TypeVar("_T")

# KEYS: seq, keys, open, ready, stats, sync, sync_at
# ARGV: prefix, target, now, resource ('' if none), sync token, restart ('1' or ''),
#       then key, raw pairs
_STORE = """
local prefix, target, now = ARGV[1], ARGV[2], ARGV[3]
local queue = prefix .. 'q:' .. target
local ids, duplicates, delivery = {}, 0, nil
for i = 7, #ARGV, 2 do
  local key = ARGV[i]
  if redis.call('HEXISTS', KEYS[2], key) == 1 then
    duplicates = duplicates + 1
  else
    local id = tostring(redis.call('INCR', KEYS[1]))
    delivery = delivery or id
    redis.call('HSET', prefix .. 'ev:' .. id, 'key', key, 'target', target,
               'received_at', now, 'raw', ARGV[i + 1], 'attempts', 0, 'delivery', delivery)
    redis.call('HSET', KEYS[2], key, id)
    redis.call('ZADD', queue, id, id)
    redis.call('ZADD', KEYS[3], now, id)
    ids[#ids + 1] = id
  end
end
if #ids > 0 then
  if redis.call('ZSCORE', KEYS[4], target) == false then
    redis.call('ZADD', KEYS[4], ids[1], target)
  end
  redis.call('HINCRBY', KEYS[5], 'stored', #ids)
end
if duplicates > 0 then redis.call('HINCRBY', KEYS[5], 'duplicates', duplicates) end
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[6], ARGV[4], ARGV[5])
  -- covered_since: kept while the run of tokens is unbroken, now when it (re)starts.
  local covered = now
  local previous = redis.call('HGET', KEYS[7], ARGV[4])
  if ARGV[6] ~= '1' and previous then covered = string.match(previous, ' (.+)$') or now end
  redis.call('HSET', KEYS[7], ARGV[4], now .. ' ' .. covered)
end
return {duplicates, ids}
"""

# Shared by the scripts that put ids back in their target's queue.
_REQUEUE = """
local function requeue(prefix, ready, id)
  local target = redis.call('HGET', prefix .. 'ev:' .. id, 'target')
  if not target then return end
  redis.call('ZADD', prefix .. 'q:' .. target, id, id)
  local head = redis.call('ZSCORE', ready, target)
  if head == false or tonumber(id) < tonumber(head) then
    redis.call('ZADD', ready, id, target)
  end
end
"""

# KEYS: claims, ready, delayed, inflight
# ARGV: prefix, now, expires_at, limit, token, the error for events of a lost lease
_CLAIM = (
    _REQUEUE
    + """
local prefix, now, limit, token = ARGV[1], ARGV[2], tonumber(ARGV[4]), ARGV[5]
-- Take back what workers whose lease ran out were holding (they died, or hung).
for _, lost in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 100)) do
  local held = prefix .. 'claim:' .. lost
  for _, id in ipairs(redis.call('LRANGE', held, 0, -1)) do
    if redis.call('HGET', KEYS[4], id) == lost then
      redis.call('HDEL', KEYS[4], id)
      -- Its worker died with it: count the attempt (ARGV[6] is the error to record).
      if redis.call('EXISTS', prefix .. 'ev:' .. id) == 1 then
        redis.call('HINCRBY', prefix .. 'ev:' .. id, 'attempts', 1)
        redis.call('HSET', prefix .. 'ev:' .. id, 'error', ARGV[6])
      end
      requeue(prefix, KEYS[2], id)
    end
  end
  redis.call('DEL', held)
  redis.call('ZREM', KEYS[1], lost)
end
-- Retries whose delay is over are pending again.
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 1000)) do
  redis.call('ZREM', KEYS[3], id)
  requeue(prefix, KEYS[2], id)
end
-- The oldest available event's target goes first; its oldest ids, in the order they were stored.
while true do
  local head = redis.call('ZRANGE', KEYS[2], 0, 0)
  if #head == 0 then return false end
  local target = head[1]
  local queue = prefix .. 'q:' .. target
  local held = prefix .. 'claim:' .. token
  local events, delivery = {}, nil
  local function take(id)
    redis.call('ZREM', queue, id)
    local f = redis.call('HMGET', prefix .. 'ev:' .. id,
                         'key', 'received_at', 'raw', 'attempts', 'error', 'delivery')
    if not f[1] then return end
    redis.call('HSET', KEYS[4], id, token)
    redis.call('RPUSH', held, id)
    events[#events + 1] = {id, f[1], f[2], f[3], f[4], f[5] or ''}
    delivery = f[6]
  end
  for _, id in ipairs(redis.call('ZRANGE', queue, 0, limit - 1)) do take(id) end
  -- Past the limit only to keep one delivery's events together.
  while delivery do
    local next = redis.call('ZRANGE', queue, 0, 0)[1]
    if not next or redis.call('HGET', prefix .. 'ev:' .. next, 'delivery') ~= delivery then
      break
    end
    take(next)
  end
  if redis.call('EXISTS', queue) == 0 then
    redis.call('ZREM', KEYS[2], target)
  else
    redis.call('ZADD', KEYS[2], redis.call('ZRANGE', queue, 0, 0)[1], target)
  end
  if #events > 0 then
    redis.call('ZADD', KEYS[1], ARGV[3], token)
    return {target, events}
  end
end
"""
)

# KEYS: claims; ARGV: token, expires_at. A claim whose lease ran out can still be renewed
# until another worker's claim takes its events back.
_RENEW = """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], 'XX', ARGV[2], ARGV[1])
return 1
"""

# The ends of a claim, or of the part of it named. KEYS: claims, inflight, open, ready,
# delayed, failed, handled, stats; ARGV: prefix, token, outcome, now, due, error, ids...
_FINISH = (
    _REQUEUE
    + """
local prefix, token, outcome, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local held = prefix .. 'claim:' .. token
local n = 0
for i = 7, #ARGV do
  local id = ARGV[i]
  local event = prefix .. 'ev:' .. id
  -- Only ids this claim still holds: if its lease ran out, another worker may have them.
  if redis.call('HGET', KEYS[2], id) == token and redis.call('EXISTS', event) == 1 then
    redis.call('HDEL', KEYS[2], id)
    redis.call('LREM', held, 1, id)
    n = n + 1
    if outcome == 'complete' then
      redis.call('ZADD', KEYS[7], now, redis.call('HGET', event, 'key'))
      redis.call('ZREM', KEYS[3], id)
      redis.call('DEL', event)
    elseif outcome == 'release' then
      requeue(prefix, KEYS[4], id)
    else
      redis.call('HINCRBY', event, 'attempts', 1)
      redis.call('HSET', event, 'error', ARGV[6])
      if outcome == 'retry' then
        redis.call('ZADD', KEYS[5], ARGV[5], id)
      else
        redis.call('ZADD', KEYS[6], id, id)
        redis.call('ZREM', KEYS[3], id)
      end
    end
  end
end
if redis.call('EXISTS', held) == 0 then redis.call('ZREM', KEYS[1], token) end
local counter = {complete = 'handled', retry = 'retried', park = 'parked'}
if n > 0 and counter[outcome] then redis.call('HINCRBY', KEYS[8], counter[outcome], n) end
return n
"""
)

# KEYS: claims, open, failed, stats; ARGV: prefix, now
_STATS = """
local in_progress = 0
for _, token in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[2], '+inf')) do
  in_progress = in_progress + redis.call('LLEN', ARGV[1] .. 'claim:' .. token)
end
local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')[2] or ''
local counters = redis.call('HMGET', KEYS[4],
                            'handled', 'duplicates', 'retried', 'gaps', 'stored', 'parked')
for i = 1, 6 do counters[i] = counters[i] or '0' end
return {redis.call('ZCARD', KEYS[2]) - in_progress, in_progress, redis.call('ZCARD', KEYS[3]),
        oldest, counters}
"""

# KEYS: failed; ARGV: prefix, limit
_FAILED = """
local rows = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)) do
  local f = redis.call('HMGET', ARGV[1] .. 'ev:' .. id,
                       'key', 'target', 'received_at', 'raw', 'attempts', 'error')
  if f[1] then rows[#rows + 1] = {id, f[1], f[2], f[3], f[4], f[5], f[6] or ''} end
end
return rows
"""

# KEYS: failed, ready, open; ARGV: prefix, now, ids...
_REPLAY = (
    _REQUEUE
    + """
local n = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  if redis.call('ZREM', KEYS[1], id) == 1 then
    local event = ARGV[1] .. 'ev:' .. id
    -- A fresh start: the worker gives it its full number of attempts again.
    redis.call('HSET', event, 'attempts', 0)
    redis.call('HDEL', event, 'error')
    redis.call('ZADD', KEYS[3], redis.call('HGET', event, 'received_at'), id)
    requeue(ARGV[1], KEYS[2], id)
    n = n + 1
  end
end
return n
"""
)

# KEYS: failed, handled; ARGV: prefix, batch, now. Purged events stay known to dedupe until
# pruned, so a late redelivery of a purged event is not handled after all.
_PURGE = """
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
for _, id in ipairs(ids) do
  local event = ARGV[1] .. 'ev:' .. id
  local key = redis.call('HGET', event, 'key')
  if key then redis.call('ZADD', KEYS[2], ARGV[3], key) end
  redis.call('DEL', event)
  redis.call('ZREM', KEYS[1], id)
end
return #ids
"""

# KEYS: handled, keys; ARGV: cutoff, batch
_PRUNE = """
local keys = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, key in ipairs(keys) do
  redis.call('HDEL', KEYS[2], key)
  redis.call('ZREM', KEYS[1], key)
end
return #keys
"""

# Purge and prune work in batches, so that no single script holds Redis up for long.
_BATCH = 1000


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _where(client: Any) -> str:
    # Host, port and database only: never the password a URL may carry.
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {})
    if "path" in kwargs:
        return f"unix:{kwargs['path']}"
    return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"


def _split_prefix(url_or_client: Any, prefix: Optional[str]) -> tuple[Any, str]:
    """The URL without its ``prefix=`` query parameter, and the prefix to use.

    ``redis://host:6379/0?prefix=myapp`` lets the command line's ``--inbox`` and
    ``--secrets`` keep several applications apart in one Redis database. An explicit
    ``prefix`` argument wins over the URL's.
    """
    if not isinstance(url_or_client, str) or "?" not in url_or_client:
        return url_or_client, prefix or DEFAULT_PREFIX
    base, _, query = url_or_client.partition("?")
    pairs = parse_qsl(query, keep_blank_values=True)
    found = [value for name, value in pairs if name == "prefix"]
    rest = urlencode([(name, value) for name, value in pairs if name != "prefix"])
    if found and not found[-1]:
        raise ValueError("the prefix= of a Redis URL must not be empty")
    chosen = prefix or (found[-1] if found else DEFAULT_PREFIX)
    return (f"{base}?{rest}" if rest else base), chosen


def _connect(url_or_client: Union[str, redis.Redis], timeout: float) -> tuple[Any, bool]:
    """A client, and whether we made it (and so close it)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    if not isinstance(url_or_client, str):
        return url_or_client, False
    if not timeout > 0:
        raise ValueError(f"timeout must be positive seconds, got {timeout!r}")
    try:
        client = redis.Redis.from_url(
            url_or_client,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            # One quick retry: a pooled connection the server closed since is no outage.
            retry=Retry(NoBackoff(), 1),
            health_check_interval=30,
        )
    except ValueError as exc:  # redis-py's word for a URL it cannot read
        raise ValueError(f"not a Redis URL: {exc}") from None
    return client, True


class RedisSecretStoreError(AsanaError):
    """``RedisSecretStore``'s server failed, or could not be reached in time.

    A receiver answers such a failure 500 (Asana tries again); ``establish_webhook`` wraps it
    in its ``SecretStoreError``, which says what became of the webhook.
    """


class _RedisBacked:
    """Redis calls with one error type, and the scripts registered once per client."""

    _what = "Redis"
    _error: type[AsanaError] = InboxError

    def __init__(self, url_or_client: Union[str, redis.Redis], timeout: float) -> None:
        self._client, self._owned = _connect(url_or_client, timeout)
        self._scripts: dict[str, Any] = {}

    def _script(self, source: str) -> Any:
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = self._client.register_script(source)
        return script

    def _call(self, doing: str, call: Callable[[], _T]) -> _T:
        import redis

        try:
            return call()
        except redis.RedisError as exc:
            raise self._error(
                f"{self._what} at {_where(self._client)} could not {doing}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def close(self) -> None:
        """Close the connections, if this object opened them (not a client it was given)."""
        if self._owned:
            self._client.close()


class RedisInbox(_RedisBacked):
    """An ``Inbox`` in Redis, for receivers and workers spread over several machines.

    ``url_or_client`` is a ``redis://`` (or ``rediss://``, ``unix://``) URL, or a ready
    ``redis.Redis`` client, used as it is (its own timeouts and retries). ``prefix`` starts
    every key (default ``asana_webhooks``, or the URL's ``?prefix=NAME``), so several inboxes
    can share one Redis database. ``timeout`` bounds connecting
    and each answer, in seconds. Keys of handled events are kept ``dedupe_window`` seconds
    (``prune`` forgets older ones). A failing or unreachable Redis raises ``InboxError``, which a
    receiver turns into a 5xx answer so that Asana delivers again.

    Needs Redis 5 or later. Redis keeps what it acknowledged only as well as it is set up to:
    run it with ``appendonly yes`` (and ``appendfsync everysec`` or ``always``) for an inbox
    that survives a Redis restart.
    """

    _what = "Redis inbox"

    def __init__(
        self,
        url_or_client: Union[str, redis.Redis],
        *,
        prefix: Optional[str] = None,
        timeout: float = DEFAULT_TIMEOUT,
        dedupe_window: float = DEFAULT_DEDUPE_WINDOW,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not dedupe_window > 0:
            raise ValueError(f"dedupe_window must be positive seconds, got {dedupe_window!r}")
        url_or_client, prefix = _split_prefix(url_or_client, prefix)
        super().__init__(url_or_client, timeout)
        self.prefix = prefix
        self.dedupe_window = float(dedupe_window)
        self._clock = clock
        self._p = f"{prefix}:inbox:"

    def __repr__(self) -> str:
        return f"RedisInbox(<{_where(self._client)}>, prefix={self.prefix!r})"

    def _keys(self, *names: str) -> list[str]:
        return [self._p + name for name in names]

    def _store(
        self,
        target: str,
        events: Sequence[Mapping[str, Any]],
        resource: str,
        sync: str,
        restart: bool = False,
    ) -> StoreResult:
        args: list[Any] = [
            self._p,
            target,
            repr(self._clock()),
            resource,
            sync,
            "1" if restart else "",
        ]
        for event in events:
            args += [event_key(event), json.dumps(event, separators=(",", ":"))]
        keys = self._keys("seq", "keys", "open", "ready", "stats", "sync", "sync_at")
        duplicates, ids = self._call(
            "store the delivery", lambda: self._script(_STORE)(keys=keys, args=args)
        )
        return StoreResult(
            stored=len(ids), duplicates=int(duplicates), ids=tuple(_text(i) for i in ids)
        )

    def store(self, target: str, events: Sequence[Mapping[str, Any]]) -> StoreResult:
        return self._store(target, events, "", "")

    def store_polled(
        self,
        resource: str,
        events: Sequence[Mapping[str, Any]],
        sync: str,
        *,
        restart: bool = False,
    ) -> StoreResult:
        if not resource:
            raise ValueError("resource must be a non-empty gid")
        return self._store(polled_target(resource), events, resource, sync, restart)

    def sync_state(self, resource: str) -> Optional[SyncState]:
        def read() -> Any:
            with self._client.pipeline(transaction=True) as pipe:
                pipe.hget(self._p + "sync", resource)
                pipe.hget(self._p + "sync_at", resource)
                return pipe.execute()

        token, when = self._call("read the sync token", read)
        if token is None:
            return None
        stored_at, _, covered_since = _text(when or "0 0").partition(" ")
        return SyncState(_text(token), float(stored_at), float(covered_since or stored_at))

    def sync_token(self, resource: str) -> Optional[str]:
        token = self._call(
            "read the sync token", lambda: self._client.hget(self._p + "sync", resource)
        )
        return None if token is None else _text(token)

    def claim(self, worker: str, *, lease: float, limit: int = 100) -> Optional[Claim]:
        if not lease > 0:
            raise ValueError(f"lease must be positive seconds, got {lease!r}")
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit!r}")
        now = self._clock()
        expires_at = now + lease
        # The worker's name in the token: who holds what shows in Redis, for an operator.
        token = f"{worker}:{uuid.uuid4().hex}"
        keys = self._keys("claims", "ready", "delayed", "inflight")
        args = [self._p, repr(now), repr(expires_at), limit, token, LEASE_LOST]
        found = self._call("claim events", lambda: self._script(_CLAIM)(keys=keys, args=args))
        if not found:
            return None
        target = _text(found[0])
        events = tuple(
            StoredEvent(
                id=_text(id_),
                key=_text(key),
                target=target,
                received_at=float(received_at),
                raw=_text(raw),
                attempts=int(attempts),
                error=_text(error) or None,
            )
            for id_, key, received_at, raw, attempts, error in found[1]
        )
        return Claim(token=token, target=target, events=events, expires_at=expires_at)

    def renew(self, claim: Claim, *, lease: float) -> bool:
        if not lease > 0:
            raise ValueError(f"lease must be positive seconds, got {lease!r}")
        now = self._clock()
        keys = self._keys("claims")
        args = [claim.token, repr(now + lease)]
        return bool(self._call("renew a claim", lambda: self._script(_RENEW)(keys=keys, args=args)))

    def _finish(self, claim: Claim, outcome: str, *, error: str = "", delay: float = 0.0) -> int:
        now = self._clock()
        keys = self._keys(
            "claims", "inflight", "open", "ready", "delayed", "failed", "handled", "stats"
        )
        args: list[Any] = [self._p, claim.token, outcome, repr(now), repr(now + delay), error]
        args += [event.id for event in claim.events]
        done = self._call(f"{outcome} a claim", lambda: self._script(_FINISH)(keys=keys, args=args))
        return int(done)

    def complete(self, claim: Claim) -> None:
        self._finish(claim, "complete")

    def retry(self, claim: Claim, error: str, *, delay: float) -> None:
        self._finish(claim, "retry", error=error, delay=max(0.0, delay))

    def park(self, claim: Claim, error: str) -> None:
        self._finish(claim, "park", error=error)

    def release(self, claim: Claim) -> None:
        self._finish(claim, "release")

    def failed(self, limit: int = 100) -> list[StoredEvent]:
        if limit < 1:
            return []
        rows = self._call(
            "list failed events",
            lambda: self._script(_FAILED)(keys=self._keys("failed"), args=[self._p, limit]),
        )
        return [
            StoredEvent(
                id=_text(id_),
                key=_text(key),
                target=_text(target),
                received_at=float(received_at),
                raw=_text(raw),
                attempts=int(attempts),
                error=_text(error) or None,
            )
            for id_, key, target, received_at, raw, attempts, error in rows
        ]

    def replay(self, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        keys = self._keys("failed", "ready", "open")
        args = [self._p, repr(self._clock()), *(str(i) for i in ids)]
        return int(self._call("replay events", lambda: self._script(_REPLAY)(keys=keys, args=args)))

    def purge(self) -> int:
        keys = self._keys("failed", "handled")
        now = repr(self._clock())
        total = 0
        while True:
            n = int(
                self._call(
                    "purge failed events",
                    lambda: self._script(_PURGE)(keys=keys, args=[self._p, _BATCH, now]),
                )
            )
            total += n
            if n < _BATCH:
                return total

    def prune(self, *, older_than: Optional[float] = None) -> int:
        keys = self._keys("handled", "keys")
        window = self.dedupe_window if older_than is None else older_than
        cutoff = repr(self._clock() - window)
        total = 0
        while True:
            n = int(
                self._call(
                    "prune dedupe keys",
                    lambda: self._script(_PRUNE)(keys=keys, args=[cutoff, _BATCH]),
                )
            )
            total += n
            if n < _BATCH:
                return total

    def stats(self) -> InboxStats:
        now = self._clock()
        keys = self._keys("claims", "open", "failed", "stats")
        pending, in_progress, failed, oldest, counters = self._call(
            "read the stats", lambda: self._script(_STATS)(keys=keys, args=[self._p, repr(now)])
        )
        handled, duplicates, retried, gaps, stored, parked = (int(c) for c in counters)
        oldest = _text(oldest)
        return InboxStats(
            pending=int(pending),
            in_progress=int(in_progress),
            failed=int(failed),
            handled=handled,
            duplicates=duplicates,
            retried=retried,
            oldest_pending_age=max(0.0, now - float(oldest)) if oldest else None,
            gaps=gaps,
            stored=stored,
            parked=parked,
        )

    def note_gap(self, resource: str, since: Optional[float]) -> None:
        def write() -> None:
            pipe = self._client.pipeline(transaction=True)
            pipe.hincrby(self._p + "stats", "gaps", 1)
            pipe.hset(self._p + "gaps", resource, repr(self._clock() if since is None else since))
            pipe.execute()

        self._call("record a sync-token gap", write)


# The secret store's scripts. Keys (all start with "<prefix>:secrets:"):
#   secret          hash: target key -> secret
#   seq             INCR counter ordering announcements
#   queue:<target>  sorted set: the target's announcement ids, oldest first
#   ann:<id>        hash: target, expires_at, received (the secret its handshake stored)
# Expired announcements stay ANNOUNCEMENT_GRACE seconds (a slow creator may still withdraw
# its own and want the secret), then go: cleared by the next announce, and by Redis' expiry.

# Shared: the id of the target's oldest live announcement, or false.
_CURRENT_FN = """
local function current(prefix, queue, now)
  for _, id in ipairs(redis.call('ZRANGE', queue, 0, -1)) do
    local expires = redis.call('HGET', prefix .. 'ann:' .. id, 'expires_at')
    if expires and tonumber(expires) > tonumber(now) then return id end
  end
  return false
end
"""

# KEYS: queue, seq; ARGV: prefix, id, target, now, expires_at, grace
_ANNOUNCE = """
local prefix, id, now, grace = ARGV[1], ARGV[2], tonumber(ARGV[4]), tonumber(ARGV[6])
for _, old in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local expires = redis.call('HGET', prefix .. 'ann:' .. old, 'expires_at')
  if not expires or tonumber(expires) + grace <= now then
    redis.call('ZREM', KEYS[1], old)
    redis.call('DEL', prefix .. 'ann:' .. old)
  end
end
local keep = math.ceil((tonumber(ARGV[5]) - now + grace) * 1000)
redis.call('HSET', prefix .. 'ann:' .. id, 'target', ARGV[3], 'expires_at', ARGV[5])
redis.call('PEXPIRE', prefix .. 'ann:' .. id, keep)
redis.call('ZADD', KEYS[1], redis.call('INCR', KEYS[2]), id)
if redis.call('PTTL', KEYS[1]) < keep then redis.call('PEXPIRE', KEYS[1], keep) end
return id
"""

# KEYS: queue; ARGV: prefix, now
_CURRENT = _CURRENT_FN + "return current(ARGV[1], KEYS[1], ARGV[2])"

# KEYS: queue, secret; ARGV: prefix, now, target, secret, require ('1' or '0')
_ACCEPT = (
    _CURRENT_FN
    + """
local id = current(ARGV[1], KEYS[1], ARGV[2])
if id then
  local announcement = ARGV[1] .. 'ann:' .. id
  if redis.call('HEXISTS', announcement, 'received') == 1 then return 0 end
  redis.call('HSET', announcement, 'received', ARGV[4])
  redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
  return 1
end
if ARGV[5] == '1' or redis.call('HEXISTS', KEYS[2], ARGV[3]) == 1 then return 0 end
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
return 1
"""
)

# KEYS: queue; ARGV: prefix, id, target
_WITHDRAW = """
local announcement = ARGV[1] .. 'ann:' .. ARGV[2]
local fields = redis.call('HMGET', announcement, 'target', 'received')
if fields[1] ~= ARGV[3] then return false end
redis.call('DEL', announcement)
redis.call('ZREM', KEYS[1], ARGV[2])
return fields[2]
"""

# Let go of a lock only if our token still holds it: a holder whose ttl ran out must not
# delete the lock the next holder took meanwhile.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_RENEW_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# Keep the later time: two receivers may record one target out of order.
_CONTACT = """
local known = redis.call('HGET', KEYS[1], ARGV[1])
if not known or tonumber(known) < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return 1
"""


class RedisSecretStore(_RedisBacked):
    """A ``SecretStore`` in Redis: receivers on several machines share webhook secrets.

    Takes the same ``url_or_client``, ``prefix`` and ``timeout`` as ``RedisInbox`` (keys start
    with ``<prefix>:secrets:``). Every change is one Lua script, so a handshake's check and
    store are atomic across all the servers. A failing or unreachable Redis raises
    ``RedisSecretStoreError``, which the receiver answers with a 500 (Asana tries again). Secrets
    are stored as Redis holds everything: protect the server (``requirepass`` or ACLs, TLS
    with ``rediss://``, no public port).
    """

    _what = "Redis secret store"
    _error = RedisSecretStoreError

    def __init__(
        self,
        url_or_client: Union[str, redis.Redis],
        *,
        prefix: Optional[str] = None,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        url_or_client, prefix = _split_prefix(url_or_client, prefix)
        super().__init__(url_or_client, timeout)
        self.prefix = prefix
        self._clock = clock
        self._p = f"{prefix}:secrets:"

    def __repr__(self) -> str:
        return f"RedisSecretStore(<{_where(self._client)}>, prefix={self.prefix!r})"

    def _queue(self, key: str) -> str:
        return f"{self._p}queue:{key}"

    def get(self, target: str) -> Optional[str]:
        key = target_key(target)
        secret = self._call("read a secret", lambda: self._client.hget(self._p + "secret", key))
        return None if secret is None else _text(secret)

    def set(self, target: str, secret: str) -> None:
        key = target_key(target)
        self._call("store a secret", lambda: self._client.hset(self._p + "secret", key, secret))

    def delete(self, target: str) -> None:
        key = target_key(target)
        self._call("delete a secret", lambda: self._client.hdel(self._p + "secret", key))

    def announce(self, target: str, ttl: float = DEFAULT_ANNOUNCEMENT_TTL) -> str:
        if not ttl > 0:
            raise ValueError(f"announcement ttl must be positive seconds, got {ttl!r}")
        key = target_key(target)
        now = self._clock()
        announcement = new_announcement_id()
        grace = ANNOUNCEMENT_GRACE
        args = [self._p, announcement, key, repr(now), repr(now + float(ttl)), repr(grace)]
        keys = [self._queue(key), self._p + "seq"]
        self._call("announce a target", lambda: self._script(_ANNOUNCE)(keys=keys, args=args))
        return announcement

    def current_announcement(self, target: str) -> Optional[str]:
        key = target_key(target)
        args = [self._p, repr(self._clock())]
        found = self._call(
            "read announcements",
            lambda: self._script(_CURRENT)(keys=[self._queue(key)], args=args),
        )
        return _text(found) if found else None

    def accept_handshake(self, target: str, secret: str, *, require_announcement: bool) -> bool:
        key = target_key(target)
        keys = [self._queue(key), self._p + "secret"]
        args = [self._p, repr(self._clock()), key, secret, "1" if require_announcement else "0"]
        return bool(
            self._call("store a handshake", lambda: self._script(_ACCEPT)(keys=keys, args=args))
        )

    def withdraw_announcement(self, target: str, announcement: str) -> Optional[str]:
        key = target_key(target)
        args = [self._p, str(announcement), key]
        received = self._call(
            "withdraw an announcement",
            lambda: self._script(_WITHDRAW)(keys=[self._queue(key)], args=args),
        )
        return _text(received) if received else None

    # --- the ensure lock and the receiver's record of contact ------------------------------

    def acquire_lock(self, name: str, ttl: float) -> Optional[str]:
        """Take the lock ``name`` for ``ttl`` seconds (``SET NX PX``, Redis's own clock);
        its token, or None if another holds it."""
        if not name:
            raise ValueError("a lock needs a name")
        if not ttl > 0:
            raise ValueError(f"lock ttl must be positive seconds, got {ttl!r}")
        token = uuid.uuid4().hex
        milliseconds = max(1, int(float(ttl) * 1000))
        taken = self._call(
            "take a lock",
            lambda: self._client.set(f"{self._p}lock:{name}", token, nx=True, px=milliseconds),
        )
        return token if taken else None

    def renew_lock(self, name: str, token: str, ttl: float) -> bool:
        """Hold the lock ``name`` ``ttl`` more seconds from now, if ``token`` still holds it."""
        if not ttl > 0:
            raise ValueError(f"lock ttl must be positive seconds, got {ttl!r}")
        keys = [f"{self._p}lock:{name}"]
        args = [str(token), max(1, int(float(ttl) * 1000))]
        renewed = self._call(
            "renew a lock", lambda: self._script(_RENEW_LOCK)(keys=keys, args=args)
        )
        return bool(renewed)

    def release_lock(self, name: str, token: str) -> None:
        """Let go of the lock ``name`` if ``token`` still holds it (else nothing happens)."""
        keys = [f"{self._p}lock:{name}"]
        self._call("release a lock", lambda: self._script(_RELEASE)(keys=keys, args=[str(token)]))

    def record_contact(self, target: str, *, heartbeat: bool, at: float) -> None:
        """Note that ``target`` heard from Asana at ``at`` (a heartbeat, or a delivery)."""
        keys = [self._p + ("heartbeat" if heartbeat else "delivery")]
        args = [target_key(target), repr(float(at))]
        self._call("record a contact", lambda: self._script(_CONTACT)(keys=keys, args=args))

    def last_contact(self, target: str) -> Contact:
        """When ``target`` last had a heartbeat and a delivery (None where never)."""
        key = target_key(target)

        def read() -> Any:
            with self._client.pipeline(transaction=False) as pipe:
                pipe.hget(self._p + "heartbeat", key)
                pipe.hget(self._p + "delivery", key)
                return pipe.execute()

        beat, delivery = self._call("read a contact", read)
        return Contact(
            last_heartbeat=None if beat is None else float(beat),
            last_delivery=None if delivery is None else float(delivery),
        )

"""How an accepted signal is stored in Redis: one Lua script per path, so the signal, its pending
marker, its alert id's marker and the rate count change together or not at all.

Every key a script touches belongs to the recorder's engine partition (`Settings.partition_key`:
`jt:{pK}:…`, or the contract's `jt:…` with one partition on a plain Redis), so on a Redis Cluster
all of them share the partition's slot."""

from __future__ import annotations

import hashlib
import logging
import time

import redis
from redis.typing import EncodableT

from libs.common import recorder_tokens, streams
from libs.common.config import Settings
from libs.common.recorder_tokens import RecorderRef, token_digest
from libs.common.streams import SIGNALS

log = logging.getLogger(__name__)

PENDING_TTL_S = 86_400  # the UI answers "pending" from this key until the engine has the signal
# KEYS: the token's rate window, the signals stream, the signal's pending marker, the partition's
# token map, the alert id's marker (the pending marker again when the alert has no id). ARGV:
# the limit, the window's time to live, the pending marker's, the recorder id, the token's
# digest, the recorder as the worker's copy of the map has it ("": already read from the map),
# the alert id marker's time to live ("0": the alert has no id), the signal id, then the
# signal's fields. When the map no longer says what the copy does, nothing happens (STALE); an
# alert id seen within its window answers the first signal's id (a repeat: neither counted nor
# stored); otherwise the signal is counted, and stored with its markers only when the window has
# room. One script, so two identical alerts store one signal, and the id's marker exists exactly
# when the signal does: a 5xx after it cannot unmark it. The window's key gets its time to live
# when it is made (its name holds the window's number, so it is never counted past that).
STORED, LIMITED, STALE = 1, 0, -1
STORE_WITHIN_LIMIT = """
if ARGV[6] ~= '' and redis.call('HGET', KEYS[4], ARGV[5]) ~= ARGV[6] then return -1 end
if ARGV[7] ~= '0' then
  local first = redis.call('GET', KEYS[5])
  if first then return first end
end
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
if count > tonumber(ARGV[1]) then return 0 end
redis.call('XADD', KEYS[2], '*', unpack(ARGV, 9))
redis.call('SET', KEYS[3], ARGV[4], 'EX', ARGV[3])
if ARGV[7] ~= '0' then redis.call('SET', KEYS[5], ARGV[8], 'EX', ARGV[7]) end
return 1
"""
# The spool's drainer stores a signal unless its alert id is already marked: by another signal
# (a repeat that arrived while Redis was down), or by this one (stored already: Redis ran the
# script but its answer was lost, or the drainer died before deleting the file). KEYS: stream,
# pending marker, id marker (the pending marker again if none); ARGV: the pending marker's time
# to live, recorder id, the id marker's time to live ("0": none), the signal id, then the fields.
# Returns the signal id the alert id stands for (this one's when it had none).
STORE_SPOOLED = """
if ARGV[3] ~= '0' then
  local first = redis.call('GET', KEYS[3])
  if first then return first end
end
redis.call('XADD', KEYS[1], '*', unpack(ARGV, 5))
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[1])
if ARGV[3] ~= '0' then redis.call('SET', KEYS[3], ARGV[4], 'EX', ARGV[3]) end
return ARGV[4]
"""
# A spooled signal's file carries its alert id's marker key under this name, beside its fields.
SPOOL_ALERT_KEY = "_alert_key"
ALERT_MARK = "webhook_alert:"  # + token digest + ":" + alert id digest


def rate_name(token: str, now_s: float, window_s: int) -> str:
    """The token's rate window's key within its recorder's partition."""
    return f"webhook_rate:{token_digest(token)}:{int(now_s // window_s)}"


class SignalStore:
    """The gateway's writes to Redis, each one script (atomic, one round trip)."""

    def __init__(self, client: redis.Redis, settings: Settings):
        self.settings = settings
        self._within_limit = client.register_script(STORE_WITHIN_LIMIT)
        self._spooled = client.register_script(STORE_SPOOLED)
        # Each partition's key prefix: `partition_key(name, k)` is `self._prefixes[k] + name`.
        self._prefixes = [settings.partition_key("", k) for k in range(settings.engine_partitions)]

    def key(self, name: str, recorder_id: int | str) -> str:
        """`name`'s key in the recorder's partition."""
        return self._prefixes[int(recorder_id) % len(self._prefixes)] + name

    def alert_key(self, token: str, alert_id: str | None, recorder_id: int) -> str | None:
        """The Redis key that marks an alert id as seen on this token (None: no id)."""
        if alert_id is None:
            return None
        digest = hashlib.sha256(alert_id.encode()).hexdigest()
        return self.key(f"{ALERT_MARK}{token_digest(token)}:{digest}", recorder_id)

    def rate_key(self, token: str, recorder_id: int, now_s: float | None = None) -> str:
        window_s = self.settings.webhook_rate_window_s
        now = time.time() if now_s is None else now_s
        return self.key(rate_name(token, now, window_s), recorder_id)

    def store_within_limit(
        self,
        token: str,
        fields: dict[str, str],
        unconfirmed: RecorderRef | None,
        alert_key: str | None = None,
    ) -> int | str:
        """In one script (atomic, one round trip): check `unconfirmed` against the token map and
        the alert id against those seen, count the signal, and when within the limit store it
        and its markers. Returns STORED, LIMITED, STALE (nothing counted or stored) or, for a
        repeated alert id, the first signal's id (nothing counted or stored)."""
        s = self.settings
        recorder_id = fields["recorder_id"]
        pending = self.key(streams.SIGNAL_PENDING + fields["signal_id"], recorder_id)
        expected = "" if unconfirmed is None else unconfirmed.to_json()
        args: list[EncodableT] = [
            s.webhook_rate_limit,
            s.webhook_rate_window_s + 1,
            PENDING_TTL_S,
            recorder_id,
            token_digest(token),
            expected,
            0 if alert_key is None else s.webhook_dedupe_window_s,
            fields["signal_id"],
        ]
        for name, value in fields.items():
            args += (name, value)
        keys = [
            self.rate_key(token, int(recorder_id)),
            self.key(SIGNALS, recorder_id),
            pending,
            self.key(recorder_tokens.TOKENS_KEY, recorder_id),
            alert_key or pending,
        ]
        outcome = self._within_limit(keys=keys, args=args)
        if isinstance(outcome, bytes | str):
            return outcome.decode() if isinstance(outcome, bytes) else outcome
        return int(outcome)

    def store_spooled(self, spooled: dict[str, str]) -> None:
        """The spool drainer's store, in one script: the signal and its markers together or not
        at all, and nothing when its alert id is already marked (a repeat, or stored already)."""
        fields = dict(spooled)
        recorder_id = fields["recorder_id"]
        alert_key = self._in_partition(fields.pop(SPOOL_ALERT_KEY, ""), recorder_id)
        s = self.settings
        args: list[EncodableT] = [
            PENDING_TTL_S,
            recorder_id,
            s.webhook_dedupe_window_s if alert_key else 0,
            fields["signal_id"],
        ]
        for name, value in fields.items():
            args += (name, value)
        pending = self.key(streams.SIGNAL_PENDING + fields["signal_id"], recorder_id)
        keys = [self.key(SIGNALS, recorder_id), pending, alert_key or pending]
        first = self._spooled(keys=keys, args=args)
        first = first.decode() if isinstance(first, bytes) else str(first)
        if first != fields["signal_id"]:
            kv = {"signal_id": fields["signal_id"], "first": first}
            log.info("spooled repeat of an alert id not stored", extra={"kv": kv})

    def _in_partition(self, alert_key: str, recorder_id: str) -> str:
        """A spooled alert id marker's key in the recorder's partition as configured now: a file
        spooled before a change of ENGINE_PARTITIONS (or before partitions) names another."""
        at = alert_key.find(ALERT_MARK)
        return alert_key if at < 0 else self.key(alert_key[at:], recorder_id)

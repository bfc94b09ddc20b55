"""The server's view of the published selections: one atomic Redis step per request,
with the worker's last snapshot as the answer when Redis is away."""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass

import redis

from ..clients.errors import REDIS_ERRORS, FastReplyError
from ..clients.fast import FastRedis
from ..layout.catalog import current_version, group_versions
from ..layout.keys import Keys
from ..layout.scripts import PICK, RECORD, bind
from .snapshot import Snapshot


log = logging.getLogger("banner_server")

_LOCAL_VISITORS = 100_000  # degraded-mode memory of last banners, per worker


class NoData(Exception):
    """Nothing to answer from: Redis is away (or empty) and this worker never saw data.
    Its message is meant for the client."""


class NotFound(Exception):
    """No selection for that campaign in that quarter."""


class Capped(Exception):
    """The visitor reached the campaign's frequency cap in this window: nothing to place
    (not an error: the answer is an empty placement)."""


@dataclass
class Pick:
    banner_id: int
    version: str
    # why Redis did not pick: "redis_unreachable" | "redis_oom" | "redis_error" |
    # "redis_empty" (drawn from the snapshot, recorded in Redis)
    degraded: str | None = None




def failure_reason(exc: Exception) -> str:
    """The metric label of a failed pick: Redis away, or Redis answering an error."""
    if isinstance(exc, (FastReplyError, redis.ResponseError)):
        # Redis 6 reports a write refused inside a script as a script error quoting it.
        message = str(exc)
        return "redis_oom" if message.startswith("OOM") or "OOM command not allowed" in message else "redis_error"
    return "redis_unreachable"


def _persistence_problem(info) -> str | None:
    """What INFO persistence says failed (a snapshot or the append-only file), or None."""
    if not isinstance(info, dict):
        return None
    if info.get("rdb_last_bgsave_status", "ok") != "ok":
        return "Redis could not write its last snapshot (a full disk?): a restart would lose recent data"
    if info.get("aof_enabled") and info.get("aof_last_write_status", "ok") != "ok":
        return "Redis could not write its append-only file (a full disk?)"
    return None


class Backoff:
    """After a failure, refuse for `every` seconds, then let one attempt through (and
    refuse again until it reports back)."""

    def __init__(self, every: float, monotonic):
        self.every = every
        self.monotonic = monotonic
        self.failed_at: float | None = None

    def ready(self) -> bool:
        if self.failed_at is None:
            return True
        now = self.monotonic()
        if now - self.failed_at >= self.every:
            self.failed_at = now
            return True
        return False

    def failed(self) -> None:
        self.failed_at = self.monotonic()



class SelectionStore(Snapshot):
    """`client` (redis-py) reads snapshots and answers /readyz; `fast`, when given,
    runs the per-request pick (see clients/fast.py: a third of the CPU of redis-py)."""

    def __init__(self, client: redis.Redis, keys: Keys, visitor_ttl: int = 86400,
                 retry_after: float = 1.0, monotonic=time.monotonic, rng: random.Random | None = None,
                 fast: FastRedis | None = None, keep_events: int = 48 * 3600,
                 frequency_cap: tuple[int, int] | None = None, now=time.time):
        super().__init__(client, keys)
        # (impressions, window seconds): the default cap of a campaign that sets none in
        # campaigns.csv (BANNERS_FREQUENCY_CAP); None: no cap.  `now` (the injected
        # clock) names the cap's window, so tests move across a window's edge.
        self.frequency_cap = frequency_cap
        self.now = now
        self._cap_specs: dict[tuple[int, int], str] = {}
        self.keep_events = keep_events  # retention is EventStore.prune's: counters have no TTL
        self._hour_ends: dict[str, tuple[str, str]] = {}
        self.ttl = str(visitor_ttl)
        self.rng = rng or random.Random()
        caller = fast if fast is not None else client
        self._pick = bind(caller, PICK)
        self._record = bind(caller, RECORD)
        # After a failure, answer from the snapshot for retry_after seconds instead of
        # paying a timeout on every request; then let one request probe Redis again.
        self._redis_backoff = Backoff(retry_after, monotonic)
        # A snapshot that failed to load (too big for the timeout, say) is retried as
        # rarely, not by every request: the picks themselves still go to Redis.
        self._follow_backoff = Backoff(retry_after, monotonic)
        self.last_error: str | None = None
        self.state: str | None = None  # None: picks go through Redis; else why not
        self._local_last: dict[str, int] = {}

    # -- health ----------------------------------------------------------------
    @property
    def degraded(self) -> bool:
        return self.state is not None

    def _set_state(self, reason: str | None) -> None:
        """One log line per change of state, not one per request."""
        if reason == self.state:
            return
        if reason is None:
            log.warning("Redis picks work again (was %s); answers go through Redis", self.state)
        elif reason == "redis_empty" and self.selections is None:
            log.warning("nothing is published yet: run `banners load DATA_DIR`; campaign pages answer 503 until then")
        elif reason == "redis_empty":
            log.warning("Redis holds no published version (flushed, or restarted without its data): "
                        "serving this worker's snapshot of version %s until `banners load` publishes again",
                        self.version)
        else:
            log.warning("Redis picks fail (%s: %s): answering from this worker's snapshot, retrying every %gs",
                        reason, self.last_error, self._redis_backoff.every)
        self.state = reason

    def _failed(self, exc: Exception, backoff: Backoff | None = None) -> None:
        (backoff or self._redis_backoff).failed()
        self.last_error = f"{type(exc).__name__}: {exc}"

    # -- snapshot --------------------------------------------------------------
    def ensure_snapshot(self) -> None:
        """Brings the snapshot up to the current version (one GET when it already is)."""
        if self._redis_backoff.ready():
            try:
                self.refresh()
                self._redis_backoff.failed_at = None
                if self.selections is None:
                    self._set_state("redis_empty")
            except REDIS_ERRORS as exc:
                self._failed(exc)
                self._set_state("redis_unreachable")

    def campaigns(self, quarter: int) -> list[int]:
        self.ensure_snapshot()
        try:
            ids = self.quarter_ids(quarter)
        except REDIS_ERRORS:
            ids = None
        return list(ids or ())

    def _hour_args(self, hour: str) -> tuple[str, str]:
        """(its end, its name) of the hour for the registry, as plain str (the fast
        client packs exact types): the end exact from a `clock.Hour` (it carries
        .end), else an upper bound (first seen + 1 h; ZADD LT keeps the least written).
        One dict lookup a pick once the hour was seen."""
        cached = self._hour_ends.get(hour)
        if cached is None:
            if len(self._hour_ends) > 4:
                self._hour_ends.clear()
            end = getattr(hour, "end", None)
            cached = self._hour_ends[hour] = (str(end if end is not None else int(self.now()) + 3600),
                                              str.__str__(hour))
        return cached

    # -- the hot path ----------------------------------------------------------
    def cap_of(self, campaign: int) -> tuple[int, int] | None:
        """(impressions, window seconds) a visitor may have of `campaign`: its
        campaigns.csv columns, else the default (BANNERS_FREQUENCY_CAP), else None."""
        if self.campaign_info is None:  # a map too big to hold: the campaign's own row, cached
            info = self.landing(campaign)
            if info and len(info) >= 4 and info[2]:
                return int(info[2]), int(info[3])
            return self.frequency_cap
        return self.caps.get(campaign, self.frequency_cap)

    def _pick_call(self, quarter: int, campaign: int, visitor: str, group: int, carried: str | None,
                   hour: str | None, invalid: str | None, version: str) -> tuple[list[str], list]:
        """(KEYS, ARGV) of pick.lua for this request and version (see its header)."""
        keys = self.keys
        visitor_key = keys.visitor(visitor, group)
        cap = self.cap_of(campaign) if (self.caps or self.frequency_cap or self.campaign_info is None) else None
        head = [keys.group_currents[group], keys.selection_set(version, quarter, campaign, group)]
        if hour:
            args = [version, self.ttl, carried or "", campaign, *self._hour_args(hour)]
            tail = [visitor_key, keys.invalid_impressions(hour, quarter, group, campaign) if invalid
                    else keys.impressions(hour, quarter, group, campaign), keys.hours(group)]
        elif cap or invalid:
            args = [version, self.ttl, carried or "", campaign, "", ""]
            tail = [visitor_key, visitor_key, visitor_key]  # KEYS[4..5] only hold KEYS[6]'s place
        else:
            args = [version, self.ttl, carried or "", campaign]
            tail = [visitor_key]
        if cap:
            # "N:W" made once per cap (the fast client packs each argument: one, not two)
            spec = self._cap_specs.get(cap)
            if spec is None:
                spec = self._cap_specs[cap] = f"{cap[0]}:{cap[1]}"
            args.append(spec)
            tail.append(keys.frequency(visitor, group, campaign, cap[1], self.now()))
            if invalid:
                args.append(invalid)
        elif invalid:
            args += ["", invalid]
        return head + tail, args

    def pick(self, quarter: int, campaign: int, visitor: str, carried: str | None = None,
             hour: str | None = None, invalid: str | None = None) -> Pick:
        """One banner for `visitor`; `carried` is the last banner its cookie carries,
        which counts when Redis remembers none for it (its first request with it).
        With `hour` (the server's local hour, `2026-11-28T23`) the answer is counted as
        an impression of that hour and quarter: a valid one, or with `invalid` (the
        reason, web/quality.py) an invalid one, counted apart by reason in the same call.
        Raises Capped when the visitor reached the campaign's frequency cap (checked and
        counted in the same call: no second round trip)."""
        if self._redis_backoff.ready():
            keys = self.keys
            group = keys.group_of(visitor)
            try:
                reply = self._pick(*self._pick_call(quarter, campaign, visitor, group, carried, hour, invalid,
                                                    self.version or ""))
                if len(reply) == 1:
                    # Another version is current in this group (a load, a rollback): ask
                    # again with its keys, and take its snapshot (its caps too).
                    version = reply[0].decode()
                    if self._follow_backoff.ready():
                        self._follow(version)
                    reply = self._pick(*self._pick_call(quarter, campaign, visitor, group, carried, hour, invalid,
                                                        version))
            except REDIS_ERRORS as exc:
                self._failed(exc)
                reason = failure_reason(exc)
                self._set_state(reason)
                return self._pick_from_snapshot(quarter, campaign, visitor, carried, reason)
            self._redis_backoff.failed_at = None
            if len(reply) != 2:
                # Nothing published in this group (Redis flushed, restarted empty, or a
                # load changed the layout): look again, else serve the snapshot.
                before = self.keys
                if self._follow_backoff.ready():
                    self._follow(None)
                if self.keys is not before:  # another layout: this visitor's group moved
                    return self.pick(quarter, campaign, visitor, carried, hour, invalid)
                return self._pick_recorded(quarter, campaign, visitor, carried, hour, invalid)
            if self.state is not None:
                self._set_state(None)
            version, banner = reply
            if not banner:
                raise NotFound
            if banner == b"capped":
                raise Capped
            banner_id = int(banner)
            self._remember(visitor, banner_id)
            return Pick(banner_id, version.decode())
        return self._pick_from_snapshot(quarter, campaign, visitor, carried, self.state or "redis_unreachable")

    def _follow(self, version: str | None) -> None:
        """A new load is current: take its snapshot (once per version and worker)."""
        try:
            self.refresh(version)
            self._follow_backoff.failed_at = None
        except REDIS_ERRORS as exc:
            self._failed(exc, self._follow_backoff)

    def _remember(self, visitor: str, banner_id: int) -> None:
        local = self._local_last
        if len(local) >= _LOCAL_VISITORS:
            local.clear()  # a crude bound; it only serves the degraded mode
        local[visitor] = banner_id

    def _candidates(self, quarter: int, campaign: int) -> tuple[int, ...]:
        if self.selections is None:
            raise NoData("No banner selection has been published yet: run `banners load DATA_DIR`, "
                         "then ask again.")
        held = self.selections.get(quarter)
        if held is None and quarter in self.quarters:
            # A quarter this worker never fetched (it fetches the one served now and the
            # next): it cannot tell which banners, nor that there are none.
            raise NoData("The banner store cannot be reached and this worker holds no snapshot of this "
                         "quarter; try again shortly.")
        banners = held.get(campaign) if held is not None else None
        if not banners:
            raise NotFound
        return banners

    def _pick_recorded(self, quarter: int, campaign: int, visitor: str, carried: str | None,
                       hour: str | None = None, invalid: str | None = None) -> Pick:
        """Redis answers but publishes nothing: draw from the snapshot, remember the
        visitor in Redis all the same."""
        self._set_state("redis_empty")
        banners = self._candidates(quarter, campaign)
        order = list(banners)
        self.rng.shuffle(order)
        try:
            keys = self.keys
            group = keys.group_of(visitor)
            counter = [keys.invalid_impressions(hour, quarter, group, campaign) if invalid
                       else keys.impressions(hour, quarter, group, campaign), keys.hours(group)] if hour else []
            banner_id = int(self._record(keys=[keys.visitor(visitor, group), *counter],
                                         args=[self.ttl, carried or "", campaign,
                                               *(self._hour_args(hour) if hour else ("", "")), invalid or "",
                                               *order]))
        except REDIS_ERRORS as exc:
            self._failed(exc)
            return self._pick_from_snapshot(quarter, campaign, visitor, carried, failure_reason(exc))
        self._remember(visitor, banner_id)
        return Pick(banner_id, self.version or "", "redis_empty")

    def _pick_from_snapshot(self, quarter: int, campaign: int, visitor: str, carried: str | None,
                            reason: str) -> Pick:
        if self.selections is None:
            raise NoData("The banner store cannot be reached and this worker has no data yet; "
                         "try again shortly.")
        banners = self._candidates(quarter, campaign)
        local = self._local_last
        last = local.get(visitor)
        if last is None and carried:
            last = int(carried)
        choices = [b for b in banners if b != last] or list(banners)
        banner_id = self.rng.choice(choices)
        self._remember(visitor, banner_id)
        return Pick(banner_id, self.version or "", reason)

    # -- readiness -------------------------------------------------------------
    def _probe_pick(self) -> None:
        """A pick like a request's, for /readyz while picks fail: reading alone cannot
        tell (a Redis out of memory still answers reads)."""
        quarter = next((q for q in self.quarters if self.selections.get(q)), None)
        if quarter is None:
            return
        campaign = next(iter(self.selections[quarter]))
        keys = self.keys
        self._pick(keys=[keys.group_currents[0], keys.selection_set(self.version, quarter, campaign, 0),
                         keys.visitor("readyz", 0)], args=[self.version, "60", "", campaign])

    def readiness(self) -> tuple[bool, dict]:
        try:
            current = current_version(self.r, self.keys)
            if current is not None:
                self.refresh(current)
        except REDIS_ERRORS as exc:
            self._failed(exc)
            self._set_state("redis_unreachable")
            return False, {
                "status": "degraded", "code": "redis_unreachable",
                "reason": f"redis unreachable: {self.last_error}",
                "serving_from_snapshot": self.selections is not None,
                "version": self.version,
            }
        if current is None:
            if self.selections is None:
                return False, {"status": "not_ready", "code": "nothing_published", "reason": "nothing published yet: run `banners load`"}
            return False, {"status": "degraded", "code": "redis_empty", "reason": "Redis holds no published version (flushed or "
                           "restarted without its data): run `banners load`", "serving_from_snapshot": True,
                           "version": self.version}
        if self.state is not None and self.selections:
            try:
                self._probe_pick()
            except REDIS_ERRORS as exc:
                self._failed(exc)
                self._set_state(failure_reason(exc))
                return False, {"status": "degraded", "code": self.state,
                               "reason": f"picks fail ({self.state}): {self.last_error}",
                               "serving_from_snapshot": True, "version": self.version}
            self._redis_backoff.failed_at = None
            self._set_state(None)
        try:
            groups = group_versions(self.r, self.keys)
            behind = sum(len(g) for ver, g in groups["serving"].items() if ver != current)
        except REDIS_ERRORS as exc:
            self._failed(exc)
            return False, {"status": "degraded", "code": "redis_unreachable",
                           "reason": f"redis unreachable: {self.last_error}",
                           "serving_from_snapshot": self.selections is not None, "version": self.version}
        if behind:
            return False, {"status": "degraded", "code": "groups_behind", "version": current,
                           "reason": f"{behind} of {groups['count']} visitor groups do not serve version {current} "
                                     "(a publish failed half-way): load again"}
        missing = [q for q in (1, 2, 3, 4) if q not in self.quarters]
        if missing:
            return False, {"status": "not_ready", "code": "quarters_missing", "reason": f"quarters not loaded: {missing}",
                           "version": self.version}
        info = {"status": "ready", "code": "ready", "version": self.version, "quarters": list(self.quarters)}
        try:
            unsaved = _persistence_problem(self.r.info("persistence"))
        except (*REDIS_ERRORS, AttributeError, TypeError):
            unsaved = None  # a Redis (or a test double) that does not say: nothing to report
        if unsaved:
            # Serving works (a failed snapshot no longer stops writes), so still ready for
            # the load balancer; the code tells the operator what a restart would lose.
            info.update(code="redis_save_failed", reason=unsaved)
        return True, info

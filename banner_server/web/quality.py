"""Traffic quality: is an impression or a click valid, and if not, why (SPEC §10).

One reason per event, the first that holds in this order (the precedence):

    impressions and clicks   head, prefetch, no_user_agent, operator_network,
                             operator_ua, bot
    clicks, then             replay, other_visitor, no_impression, too_fast, click_rate

Why this order: what the request itself says (its method, its prefetch headers, no
user-agent) is certain and free, so it goes first; the operator's own lists before
the public bot list, so the operator's monitors are counted as theirs; a click's
token problems (replayed, another visitor's) before the timing checks, which only
make sense for a token that is this visitor's own.

The request path calls `impression(method, env, client)` / `click(...)` and gets
None (valid) or the reason; it answers normally either way (never tell a bot) and
records the event apart by reason.  `env` is the WSGI environ (Falcon's `req.env`,
no copy): `HTTP_USER_AGENT`, `HTTP_SEC_PURPOSE`, ...  `client` is the address the
caller already resolved through the trusted proxies.

The user-agent verdict (operator_ua / bot / valid) is cached per user-agent string
in a bounded LRU, so a user-agent seen before costs one dict lookup; a new one costs
the list's ~2 µs (bench/results/ua_compare.md).
"""

from __future__ import annotations

import functools
import ipaddress

from is_crawler import is_crawler as _listed_is_crawler

# is-crawler keeps its own lru_cache (32768 entries); ours sits in front and is the
# one that bounds memory, so the list is asked through its uncached function.
_is_crawler = getattr(_listed_is_crawler, "__wrapped__", _listed_is_crawler)

HEAD = "head"
PREFETCH = "prefetch"
NO_USER_AGENT = "no_user_agent"
OPERATOR_NETWORK = "operator_network"
OPERATOR_UA = "operator_ua"
BOT = "bot"
REPLAY = "replay"
OTHER_VISITOR = "other_visitor"
NO_IMPRESSION = "no_impression"
TOO_FAST = "too_fast"
CLICK_RATE = "click_rate"

IMPRESSION_REASONS = (HEAD, PREFETCH, NO_USER_AGENT, OPERATOR_NETWORK, OPERATOR_UA, BOT)
CLICK_REASONS = IMPRESSION_REASONS + (REPLAY, OTHER_VISITOR, NO_IMPRESSION, TOO_FAST, CLICK_RATE)

# Headers a browser's prefetch, prerender or preview sends (Chrome: `Sec-Purpose:
# prefetch` / `prefetch;prerender`; older Chrome and Safari: `Purpose: prefetch`;
# Safari's previews: `X-Purpose: preview`; Firefox: `X-Moz: prefetch`).
_PURPOSE_HEADERS = ("HTTP_SEC_PURPOSE", "HTTP_PURPOSE", "HTTP_X_PURPOSE", "HTTP_X_MOZ")
_PURPOSE_WORDS = ("prefetch", "prerender", "preview")

UA_CACHE_SIZE = 8192  # ~300 bytes a user-agent: ~2.5 MB a worker at most
CLICK_RATE_WINDOW = 60  # seconds: BANNERS_MAX_CLICKS_PER_MINUTE counts per clock minute

# The click path's rate counter, `click_rate_key(...)`: the click's one Lua call (the
# events work's click script, on the visitor's group slot like {p}{g}:vis:{visitor})
# declares it as one more key, increments it, gives it CLICK_RATE_TTL when the count
# is 1, and answers the count with this click; that count is `clicks_this_minute`.
# No extra round trip, cluster-safe (every key declared, one slot). (The Lua itself
# belongs in banner_server/layout/lua/, where every script lives.) A fixed window (the
# clock minute), so a burst across a minute's edge may reach twice the cap before it
# counts as click_rate; the TTL outlives the minute it counts.
CLICK_RATE_TTL = 2 * CLICK_RATE_WINDOW


def click_rate_key(prefix: str, group_tag: str, visitor: str, now: float) -> str:
    """`{p}{g}:crate:{visitor}:{minute}`: the visitor's clicks in this clock minute
    (minute = unix seconds // 60), in the visitor's group `{g}`."""
    return f"{prefix}{group_tag}:crate:{visitor}:{int(now // CLICK_RATE_WINDOW)}"


class Classifier:
    def __init__(self, *, enabled: bool = True, user_agents: tuple[str, ...] = (), networks: tuple = (),
                 min_click_delay: float = 1.0, max_clicks_per_minute: int = 10,
                 token_ttl: int = 24 * 3600, cache_size: int = UA_CACHE_SIZE):
        self.enabled = enabled
        self.user_agents = tuple(s.lower() for s in user_agents)
        self.networks = tuple(networks)
        self.min_click_delay = min_click_delay
        self.max_clicks_per_minute = max_clicks_per_minute  # 0: no cap
        self.token_ttl = token_ttl
        # Per instance, so each Classifier's settings have their own verdicts.
        self.user_agent_verdict = functools.lru_cache(maxsize=cache_size)(self._user_agent_verdict)
        self._network_verdict = functools.lru_cache(maxsize=cache_size)(self._in_networks)

    @classmethod
    def from_settings(cls, settings) -> "Classifier":
        """One per worker (web/services.py), from config.Settings."""
        return cls(enabled=settings.classify, user_agents=settings.bot_user_agents or (),
                   networks=settings.bot_networks or (), min_click_delay=settings.min_click_delay,
                   max_clicks_per_minute=settings.max_clicks_per_minute)

    @classmethod
    def from_env(cls, env=None) -> "Classifier":
        from .. import config

        return cls(enabled=config.CLASSIFY.get(env),
                   user_agents=config.BOT_USER_AGENTS.get(env) or (),
                   networks=config.BOT_NETWORKS.get(env) or (),
                   min_click_delay=config.MIN_CLICK_DELAY.get(env),
                   max_clicks_per_minute=config.MAX_CLICKS_PER_MINUTE.get(env))

    # -- user-agent and network verdicts (cached) -----------------------------------

    def _user_agent_verdict(self, user_agent: str) -> str | None:
        low = user_agent.lower()
        for part in self.user_agents:
            if part in low:
                return OPERATOR_UA
        return BOT if _is_crawler(user_agent) else None

    def _in_networks(self, client: str) -> bool:
        try:
            address = ipaddress.ip_address(client.split("%", 1)[0])
        except ValueError:
            return False
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in net for net in self.networks if net.version == address.version)

    # -- events -----------------------------------------------------------------------

    def impression(self, method: str, env, client: str | None = None) -> str | None:
        """None for a valid impression, else its reason."""
        if not self.enabled:
            return None
        if method == "HEAD":
            return HEAD
        for name in _PURPOSE_HEADERS:
            value = env.get(name)
            if value:
                low = value.lower()
                if any(word in low for word in _PURPOSE_WORDS):
                    return PREFETCH
        user_agent = env.get("HTTP_USER_AGENT")
        if not user_agent or user_agent.isspace():
            return NO_USER_AGENT
        if self.networks and client and self._network_verdict(client):
            return OPERATOR_NETWORK
        return self.user_agent_verdict(user_agent)

    def click(self, method: str, env, client: str | None = None, *, served_at: float | None, now: float,
              impression_seen: bool, clicks_this_minute: int | None = None, replay: bool = False,
              other_visitor: bool = False) -> str | None:
        """None for a valid click, else its reason.

        served_at: when the token says the banner was served (None: no usable token);
        now: the injected clock; impression_seen: the caller found this visitor's
        impression of this banner (the token's visitor tag is the visitor's);
        clicks_this_minute: the rate counter after this click (see click_rate_key), None
        when not asked; replay / other_visitor: what the events work found.
        """
        if not self.enabled:
            return None
        reason = self.impression(method, env, client)
        if reason is not None:
            return reason
        if replay:
            return REPLAY
        if other_visitor:
            return OTHER_VISITOR
        if not impression_seen or served_at is None or served_at > now or now - served_at > self.token_ttl:
            return NO_IMPRESSION
        if now - served_at < self.min_click_delay:
            return TOO_FAST
        if self.max_clicks_per_minute and clicks_this_minute is not None \
                and clicks_this_minute > self.max_clicks_per_minute:
            return CLICK_RATE
        return None

"""Every BANNERS_* environment variable: its name, default and check, in one place.

The `banners serve` options are these variables (click reads them with envvar=);
serve checks every variable before anything starts, then hands them to gunicorn's
master (banner_server/gunicorn_conf.py) and its workers (Settings), which read them
here again.  A value that fails its check raises SettingError naming the variable.
README.md's table of variables lists exactly VARIABLES (a test holds them together).
"""

from __future__ import annotations

import datetime as dt
import difflib
import ipaddress
import os
import re
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from .bind import parse_bind
from .clients.urls import check_url, mask_password


class SettingError(ValueError):
    """A variable's value cannot be used; the message names the variable."""


@dataclass(frozen=True)
class Var:
    name: str
    parse: Callable[[str], Any]  # text -> value; or ValueError("is not ..." / "must be ...")
    default: str | None  # text used when unset or empty; None: no value
    doc: str  # README: what it sets
    option: str | None = None  # the `banners serve` option (or every command's) that sets it
    setting: str | None = None  # the Settings field a worker reads it into (None: gunicorn's or Redis')
    unset: Any = None  # that field when the variable is unset and has no default

    def value(self, text: str) -> Any:
        try:
            return self.parse(text)
        except ValueError as exc:
            shown = "'***'" if self.name in _SECRETS else repr(mask_password(text))
            raise SettingError(f"{self.name}={shown} {exc}") from None

    def get(self, env=None) -> Any:
        """The checked value from env (default os.environ), or the default's."""
        text = (os.environ if env is None else env).get(self.name)
        if text is None or text.strip() == "":
            if self.default is None:
                return None
            text = self.default
        return self.value(text)


VARIABLES: dict[str, Var] = {}
_SECRETS = {"BANNERS_SECRET", "BANNERS_POSTBACK_TOKEN", "BANNERS_ADMIN_TOKEN"}  # never echoed in a message


def _var(name, parse, default, doc, option=None, setting=None, unset=None) -> Var:
    var = VARIABLES[name] = Var(name, parse, default, doc, option, setting, unset)
    return var


def as_text(value) -> str:
    """A checked value written back as the text its variable reads (serve hands its
    options to gunicorn and the workers this way): unset is ""."""
    if value is None or value is False:
        return ""
    if value is True:
        return "1"
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    return str(value)


def check(env=None) -> None:
    """Reads every variable once: SettingError for the first that is wrong."""
    for var in VARIABLES.values():
        var.get(env)


# -- checks ---------------------------------------------------------------------------

def _int(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            number = int(text.strip())
        except ValueError:
            raise ValueError("is not a whole number") from None
        if number < minimum or (maximum is not None and number > maximum):
            raise ValueError(f"must be {minimum}-{maximum}" if maximum is not None else f"must be at least {minimum}")
        return number

    return parse


def _seconds(text: str) -> float:
    try:
        number = float(text.strip())
    except ValueError:
        raise ValueError("is not a number of seconds") from None
    if not 0 < number < float("inf"):
        raise ValueError("must be more than 0")
    return number


_TRUE, _FALSE = {"1", "true", "t", "yes", "y", "on"}, {"0", "false", "f", "no", "n", "off"}  # click's


def _bool(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE | _FALSE:
        return word in _TRUE
    raise ValueError("is not a yes/no value (1, true, yes, on / 0, false, no, off)")


def _text(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text


def _token(text: str) -> str:
    # RFC 6750's b64token: what an `Authorization: Bearer` header can carry as it is.
    if not re.fullmatch(r"[A-Za-z0-9._~+/-]+=*", text.strip()):
        raise ValueError("must be letters, digits and - . _ ~ + / (a bearer token), with no spaces")
    if len(text.strip()) < 16:
        raise ValueError("must be at least 16 characters")
    return text.strip()


def _path(text: str) -> Path:
    return Path(_text(text))


def _folder(text: str) -> Path:
    path = Path(_text(text))
    if not path.is_dir():
        raise ValueError("is not a folder")
    return path.resolve()


def _choice(*words: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text.strip().lower() not in words:
            raise ValueError(f"is not one of {', '.join(words)}")
        return text.strip().lower()

    return parse


def parse_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError("is not an address or network") from None


def split_networks(text: str) -> list[str]:
    """Items of a list of networks: separated by commas and/or spaces."""
    return [p for p in re.split(r"[\s,]+", text) if p]


def _networks(text: str) -> tuple:
    return tuple(parse_network(p) for p in split_networks(text))


def parse_origin(text: str) -> str:
    """A web origin for CORS (`https://shop.example`, scheme://host[:port], nothing
    more), or `*`."""
    text = text.strip().rstrip("/")
    if text == "*":
        return text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query or parts.fragment:
        raise ValueError(f"{text!r} is not an origin like https://shop.example (or *)")
    return text


def _origins(text: str) -> tuple:
    return tuple(parse_origin(o) for o in re.split(r"[,\s]+", text.strip()) if o)


def _frame_ancestors(text: str) -> str:
    # CSP source expressions: `*`, 'self', 'none', scheme: or host sources, no quotes
    # or semicolons that would end the directive and open another.
    if not re.fullmatch(r"[A-Za-z0-9*:/._\-' ]+", text.strip()) or ";" in text:
        raise ValueError("is not a list of CSP sources, e.g. * or https://shop.example 'self'")
    return text.strip()


def _memory(text: str) -> str:
    # redis.conf's memory units; redis-server refuses anything else, after it was started
    if not re.fullmatch(r"\d+(b|k|kb|m|mb|g|gb)?", text.strip(), re.I):
        raise ValueError("is not a size like 512mb or 1gb")
    return text.strip()


def check_zone(text: str, now: dt.datetime | None = None) -> str:
    """The name of an IANA time zone, or ValueError naming zones it may have meant:
    close spellings, or for a UTC offset (+05:45) the zones at that offset `now`."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

    name = text.strip()
    try:
        ZoneInfo(name)
        return name
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    zones = sorted(available_timezones())
    offset = re.fullmatch(r"(?:UTC|GMT)?([+-])(\d{1,2}):?(\d{2})?", name, re.I)
    if offset:
        sign, hours, minutes = offset.groups()
        want = dt.timedelta(hours=int(hours), minutes=int(minutes or 0)) * (1 if sign == "+" else -1)
        now = now or dt.datetime.now(dt.timezone.utc)
        at = [z for z in zones if "/" in z and not z.startswith(("Etc/", "SystemV/"))
              and now.astimezone(ZoneInfo(z)).utcoffset() == want]
        raise ValueError(f"is a UTC offset, not a time zone (offsets change with daylight saving time); "
                         f"zones at {sign}{int(hours):02}:{int(minutes or 0):02} now: "
                         f"{', '.join(at[:8]) + (', ...' if len(at) > 8 else '') if at else 'none'}")
    close = difflib.get_close_matches(name, zones, n=3, cutoff=0.6)
    raise ValueError("is not a time zone" + (f"; did you mean {', '.join(close)}?" if close else
                                             " (an IANA name like Europe/Amsterdam)"))


def _redis_url(text: str) -> str:
    try:
        check_url(text.strip())
    except ValueError as exc:
        raise ValueError(f"is not a Redis URL both clients can use: {exc}") from None
    return text.strip()


def _bind(text: str) -> str:
    try:
        parse_bind(text.strip())
    except ValueError as exc:
        raise ValueError(f"is not an address gunicorn can listen on: {exc}") from None
    return text.strip()


# -- the variables ----------------------------------------------------------------------
# (order: the README's table)

STATE_DIR = _var("BANNERS_STATE_DIR", _path, "var",
                 "folder of the embedded Redis, its data, the reject log and the metrics", "--state-dir",
                 setting="state_dir")
REDIS_URL = _var("BANNERS_REDIS_URL", _redis_url, None,
                 "`redis://`, `rediss://` (TLS), `unix://` URL of Redis or of any node of a Redis Cluster, or `redis+sentinel://host:port[,host:port]/MASTER`; unset: the embedded Redis", "--redis-url",
                 setting="redis_url", unset="redis://127.0.0.1:6379/0")
KEY_PREFIX = _var("BANNERS_KEY_PREFIX", _text, "banners:", "prefix of every Redis key (several deployments, one Redis)",
                  setting="key_prefix")
REDIS_MAXMEMORY = _var("BANNERS_REDIS_MAXMEMORY", _memory, "1gb",
                       "memory cap of the embedded Redis (read when it starts), e.g. `512mb`")
BIND = _var("BANNERS_BIND", _bind, "127.0.0.1:8000",
            "address to listen on: `HOST[:PORT]`, `tcp://HOST:PORT`, `[IPv6]:PORT`, `unix:PATH`, `fd://FD`", "--bind")
WORKERS = _var("BANNERS_WORKERS", _int(1), None, "worker processes; unset: two per core", "--workers")
QUARTER = _var("BANNERS_QUARTER", _int(1, 4), None, "serve this quarter whatever the time (demos, tests)", "--quarter",
               setting="quarter")
TZ = _var("BANNERS_TZ", check_zone, None, "time zone of the quarter (IANA name); unset: the system's", "--tz",
          setting="tz")
IMAGES = _var("BANNERS_IMAGES", _folder, None, "folder of `image_<id>.png` pictures to serve", "--images",
              setting="images_dir")
VISITOR_TTL = _var("BANNERS_VISITOR_TTL", _int(1), "86400", "seconds a visitor's last banner is remembered",
                   "--visitor-ttl", setting="visitor_ttl")
COOKIE_SECURE = _var("BANNERS_COOKIE_SECURE", _bool, "false", "mark the visitor cookie `Secure` (behind HTTPS)",
                     "--cookie-secure", setting="cookie_secure")
TRUSTED_PROXIES = _var("BANNERS_TRUSTED_PROXIES", _networks, None,
                       "networks whose `X-Forwarded-For` is believed, separated by commas or spaces",
                       "--trusted-proxy", setting="trusted_proxies", unset=())
ACCESS_LOG = _var("BANNERS_ACCESS_LOG", _text, None, "gunicorn access log file (`-`: stderr); unset: none",
                  "--access-log")
LOG_FORMAT = _var("BANNERS_LOG_FORMAT", _choice("text", "json"), "text",
                  "`text` for people, `json`: one JSON object a line (time, level, logger, message, fields)",
                  "--log-format")
LOG_LEVEL = _var("BANNERS_LOG_LEVEL", _choice("debug", "info", "warning", "error", "critical"), "info",
                 "log level of gunicorn and the server")
KEEPALIVE = _var("BANNERS_KEEPALIVE", _int(0), "5", "seconds an idle keep-alive connection is kept (0: none)")
WORKER_TIMEOUT = _var("BANNERS_WORKER_TIMEOUT", _int(1), "30",
                      "seconds after which a worker that does not report back is killed and replaced")
REDIS_TIMEOUT = _var("BANNERS_REDIS_TIMEOUT", _seconds, "0.05",
                     "seconds a request waits for Redis before answering from the worker's snapshot",
                     setting="redis_timeout")
REDIS_CONNECT_TIMEOUT = _var("BANNERS_REDIS_CONNECT_TIMEOUT", _seconds, "0.25",
                             "seconds a worker's connect to Redis may take (TCP, TLS, AUTH); at least the above",
                             setting="redis_connect_timeout")
REDIS_RETRY = _var("BANNERS_REDIS_RETRY", _seconds, "1",
                   "seconds a worker answers from its snapshot before trying Redis again", setting="redis_retry")
RECORD_IMPRESSIONS = _var("BANNERS_RECORD_IMPRESSIONS", _bool, "true",
                          "count every banner answer as an impression (for `banners export`)",
                          setting="record_impressions")
CORS_ORIGINS = _var("BANNERS_CORS_ORIGINS", _origins, None,
                    "origins whose pages may read the JSON answers (embed.js), separated by commas; `*`: any, "
                    "without credentials", "--cors-origin", setting="cors_origins", unset=())
FRAME_ANCESTORS = _var("BANNERS_FRAME_ANCESTORS", _frame_ancestors, "*",
                       "who may put /campaigns/{id}/embed in an iframe (CSP frame-ancestors)", "--frame-ancestors",
                       setting="frame_ancestors")
def _secret(text: str) -> str:
    if len(text.strip()) < 16:
        raise ValueError("must be at least 16 characters (it signs the click URLs)")
    return text.strip()


SECRET = _var("BANNERS_SECRET", _secret, None,
               "secret that signs click URLs (16+ characters; the same on every host); unset: made once in "
               "`STATE_DIR/secret`", setting="secret")
KEEP_EVENTS = _var("BANNERS_KEEP_EVENTS", _int(3600), "172800",
                   "seconds recorded impressions, clicks and conversions are kept in Redis for `banners export` "
                   "(at least an hour)", "--keep-events", setting="keep_events")
POSTBACK_TOKEN = _var("BANNERS_POSTBACK_TOKEN", _token, None,
                      "bearer token `POST /conversions` requires (16+ characters); unset: postbacks answer 503",
                      setting="postback_token")
ADMIN_TOKEN = _var("BANNERS_ADMIN_TOKEN", _token, None,
                   "the operators' credential: `/dashboard`, `/metrics`, `/readyz?detail=1` want it as "
                   "`Authorization: Bearer` or as the password of HTTP Basic (16+ characters); unset: made once "
                   "in `STATE_DIR/admin_token`", setting="admin_token")
METRICS_DIR = _var("BANNERS_METRICS_DIR", _path, None,
                   "where workers sum `/metrics`; `serve` sets it to `STATE_DIR/metrics`", setting="metrics_dir")


# -- traffic quality (banner_server/web/quality.py reads these: Classifier.from_env) --

def _seconds_or_zero(text: str) -> float:
    try:
        number = float(text.strip())
    except ValueError:
        raise ValueError("is not a number of seconds") from None
    if not 0 <= number < float("inf"):
        raise ValueError("must be 0 or more")
    return number


def _substrings(text: str) -> tuple:
    parts = tuple(dict.fromkeys(p.strip().lower() for p in text.split(",") if p.strip()))
    if not parts:
        raise ValueError("must name at least one user-agent substring")
    return parts


CLASSIFY = _var("BANNERS_CLASSIFY", _bool, "true",
                "classify traffic: bots, prefetch, `HEAD`, clicks without an impression, too fast or too many "
                "are answered but counted apart (`false`: every request counts)", setting="classify")
BOT_USER_AGENTS = _var("BANNERS_BOT_USER_AGENTS", _substrings, None,
                       "your own user-agent substrings to count apart (`operator_ua`), separated by commas, "
                       "any case", setting="bot_user_agents", unset=())
BOT_NETWORKS = _var("BANNERS_BOT_NETWORKS", _networks, None,
                    "your own networks to count apart (`operator_network`), separated by commas or spaces",
                    setting="bot_networks", unset=())
MIN_CLICK_DELAY = _var("BANNERS_MIN_CLICK_DELAY", _seconds_or_zero, "1",
                       "seconds a click must come after its impression (sooner: `too_fast`; 0: no minimum)",
                       setting="min_click_delay")
MAX_CLICKS_PER_MINUTE = _var("BANNERS_MAX_CLICKS_PER_MINUTE", _int(0), "10",
                             "clicks a visitor may make in a clock minute (more: `click_rate`; 0: no cap)",
                             setting="max_clicks_per_minute")


_WINDOW_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_CAP_WINDOW = 366 * 86400  # a cap counter is anonymous state with this TTL at most


def cap_window(text: str) -> int:
    """A frequency cap's window: seconds (`3600`) or a number and a unit (`90m`, `1h`,
    `1d`); 1 second to a year.  ValueError otherwise."""
    text = text.strip().lower()
    unit = _WINDOW_UNITS.get(text[-1:]) if text else None
    digits = text[:-1] if unit else text
    if not digits.isascii() or not digits.isdigit() or len(digits) > 9:
        raise ValueError(f"is not a window like 3600, 90m, 1h or 1d: {text[:20]!r}")
    seconds = int(digits) * (unit or 1)
    if not 1 <= seconds <= MAX_CAP_WINDOW:
        raise ValueError(f"must be 1 second to 366 days, not {seconds} s")
    return seconds


def frequency_cap(text: str) -> tuple[int, int]:
    """`N/WINDOW`: at most N impressions per visitor and campaign per window
    (`3/3600`, `3/1h`, `10/1d`)."""
    count, sep, window = text.strip().partition("/")
    if not sep or not count.strip().isascii() or not count.strip().isdigit() or not 1 <= int(count) <= 10**9:
        raise ValueError("is not a cap like 3/3600, 3/1h or 10/1d (impressions/window, impressions at least 1)")
    return int(count), cap_window(window)


FREQUENCY_CAP = _var("BANNERS_FREQUENCY_CAP", frequency_cap, None,
                     "default frequency cap of a campaign that sets none in `campaigns.csv`: `N/WINDOW`, at most "
                     "N banners of the campaign per visitor per window (`3/3600`, `3/1h`, `10/1d`); unset: none",
                     setting="frequency_cap")


def _campaign_tokens(text: str) -> tuple:
    """`campaign:token` pairs separated by commas or spaces: (campaign, token), ..."""
    pairs = []
    for item in re.split(r"[\s,]+", text.strip()):
        if not item:
            continue
        campaign, sep, token = item.partition(":")
        if not sep or not campaign.isascii() or not campaign.isdigit() or len(campaign) > 18:
            raise ValueError("must be campaign:token pairs (a campaign id, a colon, a bearer token), separated "
                             "by commas")
        try:
            pairs.append((int(campaign), _token(token)))
        except ValueError as exc:
            raise ValueError(f"has a token for campaign {int(campaign)} that {exc}") from None
    return tuple(pairs)


POSTBACK_TOKENS = _var("BANNERS_POSTBACK_TOKENS", _campaign_tokens, None,
                       "advertisers' postback tokens, `campaign:token` pairs separated by commas: each token posts "
                       "conversions of its campaign's clicks only (a campaign may have several)",
                       setting="postback_tokens", unset=())
_SECRETS.add(POSTBACK_TOKENS.name)


def _fingerprint(text: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{16}", text.strip().lower()):
        raise ValueError("is not a secret's fingerprint (16 hexadecimal digits, as serve's refusal shows it)")
    return text.strip().lower()


ROTATE_SECRET = _var("BANNERS_ROTATE_SECRET", _fingerprint, None,
                     "fingerprint of the deployment's old signing secret, recorded in Redis: this host's secret "
                     "replaces it (a rotation on purpose); harmless once done", "--rotate-secret")


def _field(var: Var):
    default = var.get({})  # the variable's default, checked like any value
    return field(default=var.unset if default is None else default)


def settings_class(variables: dict[str, Var]) -> type:
    """A frozen dataclass with one field per variable that has a `setting`, named by
    it, defaulting to the variable's default (else its `unset`), and `from_env`."""

    def from_env(cls, env=None):
        env = os.environ if env is None else env
        values = {}
        for var in variables.values():
            if var.setting:
                value = var.get(env)
                values[var.setting] = var.unset if value is None else value
        # Never less than one command's budget: a connect is at least one round trip.
        values["redis_connect_timeout"] = max(values["redis_timeout"], values["redis_connect_timeout"])
        return cls(**values)

    fields = [(var.setting, Any, _field(var)) for var in variables.values() if var.setting]
    return make_dataclass("Settings", fields, frozen=True,
                          namespace={"__module__": __name__, "from_env": classmethod(from_env)})


# What a worker needs, read once from the variables `banners serve` set (a plain Redis
# on localhost when none is named).  Built from VARIABLES: a new variable is one
# `_var(...)` line above.
Settings = settings_class(VARIABLES)
Settings.__doc__ = "What a worker needs, read once from the BANNERS_* variables (config.settings_class)."

"""Every BANNERS_* environment variable: its name, default and check, in one place.

The `banners serve` options are these variables (click reads them with envvar=);
serve checks every variable before anything starts, then hands them to gunicorn's
master (banner_server/gunicorn_conf.py) and its workers (Settings), which read them
here again.  A value that fails its check (the checks themselves: checks.py) raises
SettingError naming the variable.
README.md's table of variables lists exactly VARIABLES (a test holds them together).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, make_dataclass
from typing import Any, Callable

from .checks import (_bind, _bool, _campaign_tokens, _choice, _fingerprint, _folder, _frame_ancestors, _int,
                     _memory, _networks, _origins, _path, _redis_url, _seconds, _seconds_or_zero, _secret,
                     _substrings, _text, _token, check_zone, frequency_cap)
from .clients.urls import mask_password


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


FREQUENCY_CAP = _var("BANNERS_FREQUENCY_CAP", frequency_cap, None,
                     "default frequency cap of a campaign that sets none in `campaigns.csv`: `N/WINDOW`, at most "
                     "N banners of the campaign per visitor per window (`3/3600`, `3/1h`, `10/1d`); unset: none",
                     setting="frequency_cap")


POSTBACK_TOKENS = _var("BANNERS_POSTBACK_TOKENS", _campaign_tokens, None,
                       "advertisers' postback tokens, `campaign:token` pairs separated by commas: each token posts "
                       "conversions of its campaign's clicks only (a campaign may have several)",
                       setting="postback_tokens", unset=())
_SECRETS.add(POSTBACK_TOKENS.name)


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

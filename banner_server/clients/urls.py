"""Redis URLs: the one reading of a server's URL (redis-py's, made strict), Sentinel
URLs, and the small URL arithmetic the clients need.  Imports nothing of the package.

`parse_redis_url(url)` is how both clients (redis-py's and the hot path's) read a
single server's URL; `parse_sentinel_url(url)` reads `redis+sentinel://`; `check_url`
says, with a clear ValueError, whether a URL is one we can use at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from redis.connection import parse_url

SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}
_SENTINEL_QUERY = {"sentinel_password", "sentinel_username", "db", "ssl_cert_reqs", "ssl_ca_certs"}


def parse_redis_url(url: str) -> dict:
    """redis-py's own reading of a Redis URL (the keyword arguments of its connection),
    with what it lets through silently refused: a database that is not a number (it
    used 0), port 0 (it used 6379), a unix:// URL without a path.  The one parser of
    both Redis clients, the CLI's and the hot path's (clients.fast)."""
    text = url.strip()
    params = parse_url(text)  # ValueError: scheme, port, IPv6 brackets, query values
    parts = urlsplit(text)
    if parts.scheme == "unix":
        if not params.get("path"):
            raise ValueError("a unix:// URL needs the socket's path, e.g. unix:///run/redis.sock")
        return params
    if parts.port == 0:
        raise ValueError("port 0 is not a port Redis listens on")
    db = unquote(parts.path).strip("/")
    if db and "db" not in params:
        raise ValueError(f"the database {db!r} (the URL's path) is not a number")
    if params.get("db", 0) < 0:
        raise ValueError("the database number is negative")
    return params


def mask_password(url: str) -> str:
    """The URL with its password (if any) replaced by ***, for messages; works on
    URLs too broken to parse."""
    url = re.sub(r"(://[^:@/]*:)[^/]*@", r"\1***@", url)  # up to the last @ of the netloc
    return re.sub(r"([?&](?:sentinel_)?password=)[^&]*", r"\1***", url)  # Sentinel URLs' query


@dataclass(frozen=True)
class SentinelTarget:
    """A parsed redis+sentinel:// URL."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    tls: bool = False
    username: str | None = None
    password: str | None = None
    db: int = 0
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    ssl_cert_reqs: str | None = None
    ssl_ca_certs: str | None = None

    def _url(self, host: str, port: int, username, password, db: int = 0) -> str:
        """A FastRedis URL for one server of the set."""
        userinfo = ""
        if password is not None or username is not None:
            userinfo = f"{quote(username or '', safe='')}:{quote(password or '', safe='')}@"
        query = {k: v for k, v in (("ssl_cert_reqs", self.ssl_cert_reqs), ("ssl_ca_certs", self.ssl_ca_certs)) if v}
        host = f"[{host}]" if ":" in host else host
        url = f"{'rediss' if self.tls else 'redis'}://{userinfo}{host}:{port}/{db}"
        return f"{url}?{urlencode(query)}" if query else url

    def master_url(self, host: str, port: int) -> str:
        return self._url(host, port, self.username, self.password, self.db)

    def sentinel_url(self, host: str, port: int) -> str:
        return self._url(host, port, self.sentinel_username, self.sentinel_password)

    def tls_kwargs(self) -> dict:
        if not self.tls:
            return {}
        out = {"ssl": True}
        if self.ssl_cert_reqs:
            out["ssl_cert_reqs"] = self.ssl_cert_reqs
        if self.ssl_ca_certs:
            out["ssl_ca_certs"] = self.ssl_ca_certs
        return out


def is_sentinel_url(url: str) -> bool:
    return url.split("://", 1)[0].lower() in SENTINEL_SCHEMES


def parse_sentinel_url(url: str) -> SentinelTarget:
    """redis+sentinel://[user:pass@]host[:port][,host[:port]…]/MASTER_NAME[/DB][?…];
    raises ValueError saying what is wrong."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SENTINEL_SCHEMES:
        raise ValueError(f"not a Sentinel URL (expected {' or '.join(s + '://' for s in SENTINEL_SCHEMES)})")
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    sentinels = []
    for item in hostlist.split(","):
        item = item.strip()
        if not item:
            raise ValueError("a Sentinel URL needs host:port of one or more sentinels, comma separated")
        if item.startswith("["):  # [::1]:26379
            host, _, rest = item[1:].partition("]")
            port_text = rest[1:] if rest.startswith(":") else ""
            if rest and not rest.startswith(":"):
                raise ValueError(f"sentinel address {item!r} is not host:port")
        else:
            host, _, port_text = item.rpartition(":") if ":" in item else (item, "", "")
        try:
            port = int(port_text) if port_text else 26379
        except ValueError:
            raise ValueError(f"sentinel address {item!r}: the port is not a number") from None
        if not host or not 0 < port < 65536:
            raise ValueError(f"sentinel address {item!r} is not host:port")
        sentinels.append((unquote(host), port))
    path = [unquote(p) for p in parts.path.split("/") if p]
    if not path:
        raise ValueError("a Sentinel URL names the master after the hosts: redis+sentinel://host:port/MASTER_NAME")
    if len(path) > 2:
        raise ValueError(f"a Sentinel URL's path is /MASTER_NAME or /MASTER_NAME/DB, not {parts.path!r}")
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = set(query) - _SENTINEL_QUERY
    if unknown:
        raise ValueError(f"unknown Sentinel URL parameter(s) {', '.join(sorted(unknown))} "
                         f"(known: {', '.join(sorted(_SENTINEL_QUERY))})")
    db_text = query.get("db") or (path[1] if len(path) > 1 else "0")
    try:
        db = int(db_text)
    except ValueError:
        raise ValueError(f"the database {db_text!r} is not a number") from None
    if db < 0:
        raise ValueError(f"the database {db} is negative")
    username = password = None
    if userinfo:
        user, colon, pw = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(pw) if colon else None
    return SentinelTarget(tuple(sentinels), path[0], SENTINEL_SCHEMES[scheme], username, password, db,
                          query.get("sentinel_username") or None, query.get("sentinel_password") or None,
                          query.get("ssl_cert_reqs") or None, query.get("ssl_ca_certs") or None)


def check_url(url: str) -> None:
    """Raises ValueError with a clear message when `url` is no Redis URL we can use:
    a Sentinel URL, or one that parse_redis_url (the project's one reading of a
    single server's URL) accepts."""
    if is_sentinel_url(url):
        parse_sentinel_url(url)
        return
    try:
        parse_redis_url(url)
    except ValueError as exc:
        raise ValueError(f"{exc} (or redis+sentinel://host:port/MASTER_NAME)"
                         if "scheme" in str(exc) else str(exc)) from None


def url_db(url: str) -> int:
    return int(parse_url(url).get("db") or 0)


def node_url(url: str, host: str, port: int) -> str:
    """The URL of another node of the cluster `url` names: same scheme (unix:// becomes
    redis://: nodes announce TCP addresses), credentials and TLS settings."""
    parts = urlsplit(url)
    scheme = "rediss" if parts.scheme == "rediss" else "redis"
    userinfo = parts.netloc.rpartition("@")[0]
    query = [(k, v) for k, vs in parse_qs(parts.query).items() if k != "db" for v in vs]
    host = f"[{host}]" if ":" in host else host
    return (f"{scheme}://{userinfo + '@' if userinfo else ''}{host}:{port}"
            + (f"?{urlencode(query)}" if query else ""))


def url_addr(url: str) -> tuple[str, int] | None:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return None
    return (parts.hostname or "127.0.0.1", parts.port or 6379)

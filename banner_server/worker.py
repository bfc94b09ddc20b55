"""meinheld's gunicorn worker, without its logger monkeypatch, with an access log
that cannot be forged and that counts the answers meinheld gives on its own.

meinheld.gmeinheld.MeinheldWorker replaces gunicorn's Logger.error and Logger.access
*on the class*, in the master too (the worker object is built there before the
fork).  The master then crashes the first time it logs an error with arguments,
e.g. "Worker (pid:N) was sent SIGKILL!", and takes the whole server down with it.
This worker gives meinheld's C server an adapter instead and leaves gunicorn's
Logger alone.

meinheld answers some requests without calling the application: malformed request
lines, CONNECT, oversized headers or bodies (400, 413...).  Its access-log hook is
the only place those answers can be seen from Python, so the adapter is always
installed: it counts them into /metrics, and writes access lines only when an
access log is configured.
"""

from __future__ import annotations

import logging
from importlib import metadata
from traceback import format_exception

from gunicorn.workers.base import Worker
from meinheld import server
from meinheld.gmeinheld import MeinheldWorker as _Upstream

from .app import ANSWERED_BY_APP

# Control characters, DEL, C1 controls, quotes and backslashes are written as \xNN:
# a `%0a` in a path or an ANSI escape in a User-Agent cannot forge or hide a line.
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x22, 0x5C, *range(0x7F, 0xA0))}


def clean(value) -> str:
    return str(value).translate(_ESCAPES)


def patched_meinheld() -> bool:
    """True for the build made by third_party/meinheld/build.py."""
    try:
        return "+banners" in metadata.version("meinheld")
    except metadata.PackageNotFoundError:
        return False


class MeinheldLog:
    """The two calls meinheld's C server makes, mapped onto gunicorn's logger."""

    def __init__(self, log, access: bool, metrics=None):
        self.log = log
        self.write_access = access
        self.metrics = metrics  # set once the application is loaded

    def error(self, exc, val, tb):
        self.log.error("".join(format_exception(exc, val, tb)))

    def access(self, environ):
        status = environ.get("STATUS_CODE") or 0
        if not status:
            return  # a connection closed without a request: nothing was answered
        if ANSWERED_BY_APP not in environ and self.metrics is not None:
            self.metrics.observe("(server)", str(status), 0.0)
        if self.write_access:
            get = environ.get
            self.log.access_log.info(
                '%s - - [%s] "%s %s %s" %s %s "%s" "%s"',
                clean(get("REMOTE_ADDR", "-")),
                get("LOCAL_TIME", "-"),
                clean(get("REQUEST_METHOD", "-")),
                clean(get("PATH_INFO", "-")) + ("?" + clean(get("QUERY_STRING")) if get("QUERY_STRING") else ""),
                clean(get("SERVER_PROTOCOL", "-")),
                status,
                get("SEND_BYTES", "-"),
                clean(get("HTTP_REFERER", "-")),
                clean(get("HTTP_USER_AGENT", "-")),
            )


class MeinheldWorker(_Upstream):
    def __init__(self, *args, **kwargs):
        Worker.__init__(self, *args, **kwargs)  # skips upstream's Logger patch
        self.adapter = MeinheldLog(self.log, access=bool(self.cfg.accesslog))
        server.set_access_logger(self.adapter)
        server.set_error_logger(self.adapter)

    def load_wsgi(self):
        super().load_wsgi()
        self.adapter.metrics = getattr(self.wsgi, "metrics", None)
        if not patched_meinheld():
            logging.getLogger("banner_server").warning(
                "meinheld is not the project's patched build (third_party/meinheld/build.py): "
                "a CONNECT or Upgrade request can break the next request on a worker; run `make install`")

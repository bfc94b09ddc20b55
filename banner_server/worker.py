"""meinheld's gunicorn worker, without its logger monkeypatch.

meinheld.gmeinheld.MeinheldWorker replaces gunicorn's Logger.error and Logger.access
*on the class*, in the master too (the worker object is built there before the
fork).  The master then crashes the first time it logs an error with arguments,
e.g. "Worker (pid:N) was sent SIGKILL!", and takes the whole server down with it.
This worker gives meinheld's C server an adapter instead and leaves gunicorn's
Logger alone.
"""

from __future__ import annotations

from traceback import format_exception

from gunicorn.workers.base import Worker
from meinheld import server
from meinheld.gmeinheld import MeinheldWorker as _Upstream


class _MeinheldLog:
    """The two calls meinheld's C server makes, mapped onto gunicorn's logger."""

    def __init__(self, log):
        self.log = log

    def error(self, exc, val, tb):
        self.log.error("".join(format_exception(exc, val, tb)))

    def access(self, environ):
        self.log.access_log.info(
            '%s - - [%s] "%s %s %s" %s %s "%s" "%s"',
            environ.get("REMOTE_ADDR", "-"),
            environ.get("LOCAL_TIME", "-"),
            environ.get("REQUEST_METHOD", "-"),
            environ.get("PATH_INFO", "-"),
            environ.get("SERVER_PROTOCOL", "-"),
            environ.get("STATUS_CODE", "-"),
            environ.get("SEND_BYTES", "-"),
            environ.get("HTTP_REFERER", "-"),
            environ.get("HTTP_USER_AGENT", "-"),
        )


class MeinheldWorker(_Upstream):
    def __init__(self, *args, **kwargs):
        Worker.__init__(self, *args, **kwargs)  # skips upstream's Logger patch
        adapter = _MeinheldLog(self.log)
        server.set_access_logger(adapter if self.cfg.accesslog else None)
        server.set_error_logger(adapter)

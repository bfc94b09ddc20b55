"""meinheld's gunicorn worker, without its logger monkeypatch, stopping on QUIT, with
an access log that cannot be forged and that counts the answers meinheld gives on
its own.

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

Signals: while meinheld's C loop runs, it catches INT and TERM itself (in C: it
stops accepting, lets open connections finish for up to a second, and returns).
Any other signal gets a Python handler, and Python handlers only run when Python
code does: an idle worker never ran upstream's SIGQUIT handler, so gunicorn's quick
stop (the master's answer to INT, and to Ctrl-C) waited its whole graceful timeout
and then SIGKILLed every worker.  Here a thread takes SIGQUIT and hands it to the
loop as a TERM, and a signal that comes while the worker boots (Ctrl-C reaches
every process at once) makes it exit instead of starting the loop.
"""

from __future__ import annotations

import logging
import signal
import threading
from importlib import metadata
from traceback import format_exception

from gunicorn.workers.base import Worker
from meinheld import server
from meinheld.gmeinheld import MeinheldWorker as _Upstream

from banner_server.text import clean  # the one escape, shared with the CLI

from ..web.ops import ANSWERED_BY_APP


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
            query = get("QUERY_STRING")
            fields = {
                "remote": get("REMOTE_ADDR", "-"), "method": get("REQUEST_METHOD", "-"),
                "path": get("PATH_INFO", "-") + ("?" + query if query else ""),
                "protocol": get("SERVER_PROTOCOL", "-"), "status": status, "bytes": get("SEND_BYTES", 0),
                "referer": get("HTTP_REFERER", "-"), "user_agent": get("HTTP_USER_AGENT", "-"),
            }
            self.log.access_log.info(
                '%s - - [%s] "%s %s %s" %s %s "%s" "%s"',
                clean(fields["remote"]), get("LOCAL_TIME", "-"), clean(fields["method"]), clean(fields["path"]),
                clean(fields["protocol"]), status, fields["bytes"], clean(fields["referer"]),
                clean(fields["user_agent"]),
                extra={"fields": fields},  # the JSON format writes them as fields, escaped by json
            )


_STOP = {signal.SIGINT, signal.SIGTERM, signal.SIGQUIT}


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

    def init_signals(self):
        super().init_signals()
        # The thread starts with every stop signal blocked (so none of them can ever
        # run a handler there), waits for QUIT, and passes it on to the main thread,
        # which keeps QUIT blocked and INT/TERM open for meinheld's C handler.
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOP)
        main = threading.get_ident()
        threading.Thread(target=self._quit_as_term, args=(main,), name="sigquit", daemon=True).start()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})

    @staticmethod
    def _quit_as_term(main: int) -> None:
        signal.sigwait({signal.SIGQUIT})
        signal.pthread_kill(main, signal.SIGTERM)

    # Outside meinheld's loop (booting, or already stopping) the Python handlers run:
    # remember to stop; run() then does not start the loop.
    def handle_exit(self, sig, frame):
        self.alive = False

    handle_quit = handle_exit

    def run(self):
        try:
            if self.alive:
                super().run()
        finally:
            # On its way out the worker may still get the master's TERM or QUIT after
            # a Ctrl-C already stopped it; with Python's handlers gone at exit, that
            # would kill it half-way ("Worker was sent SIGTERM!").
            signal.pthread_sigmask(signal.SIG_BLOCK, _STOP)

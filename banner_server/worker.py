"""meinheld's gunicorn worker, without its logger monkeypatch, and stopping on QUIT.

meinheld.gmeinheld.MeinheldWorker replaces gunicorn's Logger.error and Logger.access
*on the class*, in the master too (the worker object is built there before the
fork).  The master then crashes the first time it logs an error with arguments,
e.g. "Worker (pid:N) was sent SIGKILL!", and takes the whole server down with it.
This worker gives meinheld's C server an adapter instead and leaves gunicorn's
Logger alone.

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

import signal
import threading
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


_STOP = {signal.SIGINT, signal.SIGTERM, signal.SIGQUIT}


class MeinheldWorker(_Upstream):
    def __init__(self, *args, **kwargs):
        Worker.__init__(self, *args, **kwargs)  # skips upstream's Logger patch
        adapter = _MeinheldLog(self.log)
        server.set_access_logger(adapter if self.cfg.accesslog else None)
        server.set_error_logger(adapter)

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

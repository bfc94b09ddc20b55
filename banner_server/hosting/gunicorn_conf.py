"""gunicorn settings of `banners serve` (which sets the BANNERS_* variables read here).

They live in the package so that an installed wheel can serve; the checkout's
top-level gunicorn.conf.py imports them.  meinheld's worker is the fast path (an
event loop in C); when meinheld cannot be imported, gthread workers take over and
the log says so.
"""

# Module-level names are gunicorn settings when it knows them (`config` is one):
# what is not a setting starts with an underscore.
import logging as _logging
import os as _os
import sys as _sys

import gunicorn.util as _gunicorn_util

from banner_server import config as _config
from banner_server.bind import describe as _describe, is_tcp as _is_tcp
from banner_server.web import metrics as _metrics

try:
    bind = _config.BIND.get()
    # Two per core: a worker spends part of each request waiting for its Redis round
    # trip, and a second one per core fills that wait (measured in bench/README.md).
    workers = _config.WORKERS.get() or 2 * (_os.cpu_count() or 1)
    keepalive = _config.KEEPALIVE.get()
    # A worker that does not report back within this many seconds is killed and replaced.
    timeout = _config.WORKER_TIMEOUT.get()
    accesslog = _config.ACCESS_LOG.get()
    loglevel = _config.LOG_LEVEL.get()
    logger_class = ("banner_server.hosting.logs.JsonLogger" if _config.LOG_FORMAT.get() == "json"
                    else "banner_server.hosting.logs.BannersLogger")
    _metrics_dir = _config.METRICS_DIR.get()
except _config.SettingError as exc:  # `banners serve` checks first; this is for a plain `gunicorn`
    _sys.exit(f"error: {exc}")

backlog = 2048
# Each worker listens on its own SO_REUSEPORT socket and the kernel spreads new
# connections over them.  With one shared socket, meinheld's accept loop lets the
# first worker to wake take a whole burst of keep-alive connections: measured, one
# of two workers served every request of a 64-connection benchmark.  Linux has no
# SO_REUSEPORT for unix sockets: there the master binds one socket for all workers.
reuse_port = _is_tcp(bind)
# gunicorn waits this long for workers to finish on TERM (then SIGKILLs them);
# meinheld's workers stop within a second (see banner_server/hosting/worker.py).
graceful_timeout = 10
worker_connections = 4096
# Header limits (used by gunicorn's own workers; meinheld has its fixed ones).
limit_request_line = 4096
limit_request_fields = 100
limit_request_field_size = 8190
proc_name = "banners"
wsgi_app = "banner_server.hosting.wsgi:application"
control_socket_disable = True

try:
    import banner_server.hosting.worker  # noqa: F401  (imports meinheld)

    worker_class = "banner_server.hosting.worker.MeinheldWorker"
    _fallback = None
except ImportError as exc:  # pragma: no cover - depends on the install
    worker_class = "gthread"
    threads = 8
    _fallback = str(exc)


def _set_title(title: str) -> None:
    """gunicorn titles its processes "gunicorn: master [banners]"; ps, top and
    systemd then show "banners: master" and "banners: worker" instead."""
    from setproctitle import setproctitle

    setproctitle(f"{proc_name}: {title.split(' [', 1)[0]}")


# gunicorn only has setproctitle off macOS (where it crashes after fork), and
# proc_name alone changes no title.
if _sys.platform != "darwin":
    _gunicorn_util._setproctitle = _set_title


class _ListeningAt(_logging.Filter):
    """With reuse_port the master holds no socket (each worker binds its own), so
    gunicorn logs "Listening at:  (pid)" without an address: this fills it in."""

    def __init__(self, address: str):
        super().__init__()
        self.address = address

    def filter(self, record):
        if record.msg == "Listening at: %s (%s)" and isinstance(record.args, tuple) and not record.args[0]:
            record.args = (self.address, *record.args[1:])
        return True


def on_starting(server):
    server.log.error_log.addFilter(_ListeningAt(_describe(bind)))
    if _fallback:
        server.log.warning("meinheld is not importable (%s): using gthread workers instead", _fallback)
    if _metrics_dir:
        # Counters start from zero with each server, in a folder of this master's own
        # (the workers read it from the variable): a second server on the same state
        # folder no longer wipes this one's.  `banners serve` checked it can be made.
        try:
            mine = _metrics.instance_dir(_metrics_dir)
        except OSError as exc:
            server.log.error("cannot make the metrics folder in %s: %s", _metrics_dir, exc)
            _sys.exit(1)
        # Written as serve writes every variable; gunicorn forks the workers, which read it.
        _os.environ.update({_config.METRICS_DIR.name: str(mine)})


def child_exit(server, worker):
    """An exited worker's counts go into the server's one folded file and its own files
    are removed: a scrape reads one file per live worker, however many reloads."""
    directory = _config.METRICS_DIR.get()  # this server's own folder, once on_starting made it
    if directory:
        try:
            _metrics.fold_worker(directory, worker.pid)
        except OSError as exc:
            server.log.warning("could not fold the metrics of worker %s: %s", worker.pid, exc)


def post_fork(server, worker):
    """A worker still booting inherits the master's signal handlers, which only queue a
    signal for the master's loop: a Ctrl-C or the master's QUIT arriving then was lost,
    and the master waited its graceful timeout and SIGKILLed the worker.  Until the
    worker installs its own handlers, a stop signal marks it to exit instead."""
    import signal

    def stop_when_booted(sig, frame):
        worker.alive = False

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
        signal.signal(sig, stop_when_booted)


def post_worker_init(worker):
    if "Meinheld" in worker_class:
        from meinheld import server as meinheld_server

        # GET-only service: refuse request bodies beyond 64 KiB.
        meinheld_server.set_max_content_length(64 * 1024)
        meinheld_server.set_client_body_buffer_size(16 * 1024)
    _logging.getLogger("banner_server").setLevel(loglevel.upper())

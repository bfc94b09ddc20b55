"""gunicorn settings for `banners serve` (which sets the BANNERS_* variables read here).

meinheld's worker is the fast path (an event loop in C); when meinheld cannot be
imported, gthread workers take over and the log says so.
"""

import logging
import os
import shutil

from banner_server.bind import is_tcp

bind = os.environ.get("BANNERS_BIND", "127.0.0.1:8000")
# Two per core: a worker spends part of each request waiting for its Redis round
# trip, and a second one per core fills that wait (measured in bench/README.md).
workers = int(os.environ.get("BANNERS_WORKERS") or 2 * (os.cpu_count() or 1))
backlog = 2048
# Each worker listens on its own SO_REUSEPORT socket and the kernel spreads new
# connections over them.  With one shared socket, meinheld's accept loop lets the
# first worker to wake take a whole burst of keep-alive connections: measured, one
# of two workers served every request of a 64-connection benchmark.  Linux has no
# SO_REUSEPORT for unix sockets: there the master binds one socket for all workers.
reuse_port = is_tcp(bind)
keepalive = int(os.environ.get("BANNERS_KEEPALIVE", "5"))
# A worker that does not report back within this many seconds is killed and replaced.
timeout = int(os.environ.get("BANNERS_WORKER_TIMEOUT", "30"))
graceful_timeout = 10
worker_connections = 4096
# Header limits (used by gunicorn's own workers; meinheld has its fixed ones).
limit_request_line = 4096
limit_request_fields = 100
limit_request_field_size = 8190
accesslog = os.environ.get("BANNERS_ACCESS_LOG") or None
loglevel = os.environ.get("BANNERS_LOG_LEVEL", "info")
proc_name = "banners"
wsgi_app = "banner_server.wsgi:application"
control_socket_disable = True

try:
    import banner_server.worker  # noqa: F401  (imports meinheld)

    worker_class = "banner_server.worker.MeinheldWorker"
    _fallback = None
except ImportError as exc:  # pragma: no cover - depends on the install
    worker_class = "gthread"
    threads = 8
    _fallback = str(exc)


def on_starting(server):
    if _fallback:
        server.log.warning("meinheld is not importable (%s): using gthread workers instead", _fallback)
    metrics_dir = os.environ.get("BANNERS_METRICS_DIR")
    if metrics_dir:
        # Counters start from zero with each server, but survive worker restarts.
        shutil.rmtree(metrics_dir, ignore_errors=True)
        os.makedirs(metrics_dir, exist_ok=True)


def post_worker_init(worker):
    if "Meinheld" in worker_class:
        from meinheld import server as meinheld_server

        # GET-only service: refuse request bodies beyond 64 KiB.
        meinheld_server.set_max_content_length(64 * 1024)
        meinheld_server.set_client_body_buffer_size(16 * 1024)
    logging.getLogger("banner_server").setLevel(loglevel.upper())

"""Builds and installs meinheld 1.0.2 from its PyPI sdist, with the project's fixes.

meinheld's last release (2020) is what the design card asks for, and the only
fast meinheld there is; these fixes cannot be made from Python:

1. A request that asks for a protocol upgrade (`CONNECT host:port`, or
   `Upgrade: h2c` / `websocket`) made the C server raise "unknow protocol" and
   leave that Python exception set: the NEXT request on the worker, from any
   client, failed with SystemError (500) or crashed the worker (SIGSEGV).  Now a
   CONNECT is refused with 400, any other Upgrade header is ignored (RFC 9110
   lets a server do so) and the request answered over HTTP/1.1 without
   keep-alive, and any exception a parse error leaves is logged and cleared.
2. Every answer said `Server: meinheld/1.0.2`: it now says `Server: banners`,
   no version (meinheld overrides the application's own Server header).
3. Its metadata pins greenlet<0.5, which does not build on Python 3.11; it runs
   on greenlet 3, which the project pins, and is compiled against greenlet 3's
   own header and C API (it shipped greenlet 0.4's header).
4. (+banners2) A Transfer-Encoding other than exactly `chunked` is refused: 501
   for an unknown coding, 400 for a malformed list, chunked not last, or with a
   Content-Length (request smuggling); any spelling of chunked is read chunked.
5. (+banners2) No epoll_ctl call that fails (two a keep-alive request before).
6. (+banners2) Request greenlets are reused; spawned greenlets are released
   when they finish; no call that Python 3.13 removed.
The comments at each patch in PATCHES say why, with the measurements.

The sdist is checked against its sha256 before anything is built.  Usage:
    python third_party/meinheld/build.py [--wheel-dir DIR]
(installs into the running interpreter, or only builds a wheel into DIR).
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VERSION = "1.0.2"
LOCAL = "banners2"  # PEP 440 local version: pip shows it is the patched build
SHA256 = "008c76937ac2117cc69e032dc69cea9f85fc605de9bac1417f447c41c16a56d6"

# (file, exact upstream text, replacement): each must match exactly once, so a
# different sdist fails loudly instead of building half-patched.
PATCHES = [
    (
        "meinheld/server/meinheld.h",
        '#define SERVER "meinheld/1.0.2"',
        '#define SERVER "banners"',
    ),
    (
        "meinheld/server/server.c",
        """  if (client->upgrade) {
    // TODO  New protocol
    if (parse_new_protocol(req, buf, r, nread) == -1) {
      return set_read_error(client, req->bad_request_code);
    }
  } else if (req == NULL) {""",
        """  if (client->upgrade) {
    /* banners: no protocol upgrades.  A CONNECT (no path to route) or bytes
       after the upgrade request are refused; any other Upgrade header is
       ignored and the request served over HTTP/1.1, then the connection
       closed.  Upstream set a Python exception here and left it pending. */
    if (req == NULL || client->http_parser->method == HTTP_CONNECT || nread != r) {
      return set_read_error(client, 400);
    }
    client->keep_alive = 0;
  } else if (req == NULL) {""",
    ),
    (
        "meinheld/server/server.c",
        """static int set_read_error(client_t *client, int status_code) {
  client->keep_alive = 0;""",
        """static int set_read_error(client_t *client, int status_code) {
  if (PyErr_Occurred()) {
    /* banners: a parser callback failed; log and clear its exception so it
       cannot surface in the next request's Python code. */
    call_error_logger();
  }
  client->keep_alive = 0;""",
    ),
    (
        "setup.py",
        "install_requires=['greenlet>=0.4.5,<0.5']",
        "install_requires=['greenlet>=3']",
    ),
    (
        "setup.py",
        'version="1.0.2"',
        f'version="{VERSION}+{LOCAL}"',
    ),
    # --- banners2 ---------------------------------------------------------
    # 4. Transfer-Encoding (RFC 9112 6.1, 6.3).  Upstream matched the header name
    #    case-sensitively and only the exact value `chunked`: `xchunked`,
    #    `identity`, `gzip, chunked` or a lowercase `transfer-encoding: chunked`
    #    left the body framed by Content-Length (or by nothing), so the body of a
    #    request could be read as the next request (smuggling).
    (
        "meinheld/server/http_request_parser.c",
        """int headers_complete_cb(http_parser *p) {""",
        """/* banners: the status to refuse a request's Transfer-Encoding with, 0 if
   there is none or it is exactly `chunked` (then the body is read chunked,
   whatever the case of the header's name or value). */
static int is_tchar(unsigned char ch) {
  return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
         (ch >= 'A' && ch <= 'Z') || (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch));
}

static int transfer_encoding_status(http_parser *p, PyObject *env) {
  static PyObject *te_key = NULL;
  PyObject *value;
  const char *s;
  Py_ssize_t len, i = 0;
  int chunked = 0, chunked_last = 0, unknown = 0;

  if (te_key == NULL && (te_key = NATIVE_FROMSTRING("HTTP_TRANSFER_ENCODING")) == NULL) {
    return 500;
  }
  value = PyDict_GetItem(env, te_key);
  if (value == NULL) {
    return (p->flags & F_CHUNKED) ? 400 : 0;
  }
  if (p->set_content_length || p->content_length != ULLONG_MAX) {
    return 400; /* Transfer-Encoding and Content-Length: request smuggling */
  }
  s = PyUnicode_AsUTF8AndSize(value, &len);
  if (s == NULL) {
    PyErr_Clear();
    return 400;
  }
  /* several Transfer-Encoding headers arrive joined by ", " */
  while (i <= len) {
    Py_ssize_t start, end, name_end;
    while (i < len && (s[i] == ' ' || s[i] == '\\t')) i++;
    start = i;
    while (i < len && s[i] != ',') i++;
    end = i;
    while (end > start && (s[end - 1] == ' ' || s[end - 1] == '\\t')) end--;
    i++; /* past the comma */
    name_end = start;
    while (name_end < end && is_tchar((unsigned char)s[name_end])) name_end++;
    if (name_end == start || (name_end < end && s[name_end] != ';' &&
                              s[name_end] != ' ' && s[name_end] != '\\t')) {
      return 400; /* empty or malformed coding */
    }
    if (name_end - start == 7 && strncasecmp(s + start, "chunked", 7) == 0) {
      if (chunked || name_end != end) {
        return 400; /* chunked twice, or with parameters */
      }
      chunked = chunked_last = 1;
    } else {
      unknown = 1;
      chunked_last = 0;
    }
  }
  if (chunked && !chunked_last) {
    return 400; /* chunked must be the final coding of a request */
  }
  if (unknown) {
    return 501;
  }
  p->flags |= F_CHUNKED;
  return 0;
}

int headers_complete_cb(http_parser *p) {""",
    ),
    (
        "meinheld/server/http_request_parser.c",
        """  // Last header
  if (likely(req->field && req->value)) {
    if (add_header(req) < 0) {
      return -1;
    }
  }
""",
        """  // Last header
  if (likely(req->field && req->value)) {
    if (add_header(req) < 0) {
      return -1;
    }
  }

  ret = transfer_encoding_status(p, env);
  if (unlikely(ret != 0)) {
    req->bad_request_code = ret;
    return -1;
  }
""",
    ),
    (
        "meinheld/server/response.c",
        """#define MSG_500                                                                \\
  H_MSG_500""",
        """#define H_MSG_501                                                         \\
  "HTTP/1.0 501 Not Implemented\\r\\nContent-Type: text/html\\r\\nServer: " SERVER \\
  "\\r\\n\\r\\n"

#define MSG_501                                                            \\
  H_MSG_501                                                                \\
      "<html><head><title>Not Implemented</title></head><body><p>Not "    \\
      "Implemented.</p></body></html>"

#define MSG_500                                                                \\
  H_MSG_500""",
    ),
    (
        "meinheld/server/response.c",
        """    case 503:
      blocking_write(client, MSG_503, sizeof(MSG_503) - 1);""",
        """    case 501:
      blocking_write(client, MSG_501, sizeof(MSG_501) - 1);
      client->write_bytes -= sizeof(H_MSG_501) - 1;
      break;
    case 503:
      blocking_write(client, MSG_503, sizeof(MSG_503) - 1);""",
    ),
    # 5. epoll_ctl (issue 23).  Every fd was added with EPOLLEXCLUSIVE, which the
    #    kernel refuses to MODify: each keep-alive request cost a failing
    #    EPOLL_CTL_MOD (EINVAL) and a failing EPOLL_CTL_ADD (EEXIST), and a
    #    response waiting for a slow reader never got EPOLLOUT registered: the
    #    worker spun on writev -> EAGAIN (3384 of them in half a second for one
    #    16 MiB answer) instead of sleeping.  Now only the listening socket
    #    (shared by the workers: the thundering herd) is exclusive, and a
    #    just-accepted fd, known not to be registered, is ADDed without the MOD
    #    that failed with ENOENT.  strace -f -c on one of 2 workers under wrk
    #    (bench/reference_app.py): before, 11818 epoll_ctl calls, 11776 failing,
    #    for ~5900 requests; after, 3353 calls (one MOD a keep-alive request),
    #    none failing, for ~3350 requests.
    (
        "meinheld/server/picoev_epoll.c",
        """picoev_globals picoev;
""",
        """picoev_globals picoev;

/* banners: picoev_fd._backend bits (the epoll backend's own). */
#define BACKEND_EXCLUSIVE 1   /* the listening socket: EPOLLEXCLUSIVE */
#define BACKEND_REGISTERED 2  /* known to be in the epoll set (exclusive only) */
#define BACKEND_FRESH 4       /* known NOT to be in it (just accepted) */

void picoev_epoll_exclusive(int fd) {
  picoev.fds[fd]._backend = BACKEND_EXCLUSIVE;
}

void picoev_epoll_fresh(int fd) { picoev.fds[fd]._backend = BACKEND_FRESH; }
""",
    ),
    (
        "meinheld/server/picoev_epoll.c",
        """  if ((events & PICOEV_DEL) != 0) {
    /* nothing to do */
  } else if ((events & PICOEV_READWRITE) == 0) {
    SET(EPOLL_CTL_DEL, 1);
  } else {
    SET(EPOLL_CTL_MOD, 0);
    if (epoll_ret != 0) {
      assert(errno == ENOENT);
      ev.events |= EPOLLEXCLUSIVE;
      SET(EPOLL_CTL_ADD, 1);
    }
  }
""",
        """  if ((events & PICOEV_DEL) != 0) {
    /* nothing to do */
  } else if ((events & PICOEV_READWRITE) == 0) {
    SET(EPOLL_CTL_DEL, 1);
    if (target->_backend & BACKEND_EXCLUSIVE) {
      target->_backend = BACKEND_EXCLUSIVE;
    }
  } else if (target->_backend & BACKEND_EXCLUSIVE) {
    /* an exclusive registration cannot be modified (EINVAL): the listening
       socket only ever waits for EPOLLIN, so keep it, or add it. */
    if (!(target->_backend & BACKEND_REGISTERED)) {
      ev.events |= EPOLLEXCLUSIVE;
      SET(EPOLL_CTL_ADD, 1);
      target->_backend = BACKEND_EXCLUSIVE | BACKEND_REGISTERED;
    }
  } else if (target->_backend & BACKEND_FRESH) {
    target->_backend = 0;
    SET(EPOLL_CTL_ADD, 0);
    if (epoll_ret != 0 && errno == EEXIST) {
      SET(EPOLL_CTL_MOD, 1);
    }
  } else {
    /* maybe still registered (deferred delete), maybe closed and reused */
    SET(EPOLL_CTL_MOD, 0);
    if (epoll_ret != 0) {
      assert(errno == ENOENT);
      SET(EPOLL_CTL_ADD, 1);
    }
  }
""",
    ),
    (
        "meinheld/server/picoev_epoll.c",
        """      event->events = 0;
      epoll_ctl(loop->epfd, EPOLL_CTL_DEL, event->data.fd, event);""",
        """      event->events = 0;
      epoll_ctl(loop->epfd, EPOLL_CTL_DEL, event->data.fd, event);
      if (target->_backend & BACKEND_EXCLUSIVE) {
        target->_backend = BACKEND_EXCLUSIVE;
      }""",
    ),
    (
        "meinheld/server/server.c",
        """      setup_listen_sock(listen_sock);
      ret = picoev_add(main_loop, listen_sock, PICOEV_READ, ACCEPT_TIMEOUT_SECS,""",
        """      setup_listen_sock(listen_sock);
      picoev_epoll_exclusive(listen_sock);
      ret = picoev_add(main_loop, listen_sock, PICOEV_READ, ACCEPT_TIMEOUT_SECS,""",
    ),
    (
        "meinheld/server/server.c",
        """      if (client_fd != -1) {
        DEBUG("accept fd %d", client_fd);""",
        """      if (client_fd != -1) {
        DEBUG("accept fd %d", client_fd);
        picoev_epoll_fresh(client_fd);""",
    ),
    (
        "meinheld/server/server.c",
        """#include "greensupport.h"
""",
        """#include "greensupport.h"

/* banners: picoev_epoll.c (the only poller built on Linux) */
void picoev_epoll_exclusive(int fd);
void picoev_epoll_fresh(int fd);
""",
    ),
    # 6. greenlet 3 (issue 23).  The bundled greenlet.h is greenlet 0.4's: its
    #    macros read fields that greenlet 3's PyGreenlet no longer has.
    #    greenlet_dead() read the weakref list and __dict__ as the stack
    #    pointers: a finished spawned greenlet anything held a weak reference
    #    to stayed "alive" and leaked (1000 of 1000 in the test), and a
    #    suspended one with a __dict__ would read as "dead" and lose its
    #    reference under it; greenlet_getparent() read past the end of the
    #    object, so meinheld.sleep() in a request answered 500.  The header is
    #    now the installed greenlet's (patch_tree copies it) and its C API
    #    functions are used.  A spawned greenlet's own
    #    reference now lives in a set and is dropped when it is seen dead; a
    #    sleeping request greenlet (timer) is no longer decref'd by the timer,
    #    which would have freed it under its client once greenlet_dead worked.
    (
        "meinheld/server/greensupport.c",
        """PyObject *greenlet_setparent(PyObject *g, PyObject *parent) {
  import_greenlet();
  return PyGreenlet_SetParent((PyGreenlet *)g, (PyGreenlet *)parent);
}

PyObject *greenlet_getparent(PyObject *g) {
  import_greenlet();
  return (PyObject *)PyGreenlet_GET_PARENT((PyGreenlet *)g);
}""",
        """PyObject *greenlet_setparent(PyObject *g, PyObject *parent) {
  import_greenlet();
  if (PyGreenlet_SetParent((PyGreenlet *)g, (PyGreenlet *)parent) != 0) {
    return NULL;
  }
  Py_RETURN_NONE;
}

/* borrowed, as the callers expect: a greenlet holds a reference to its parent */
PyObject *greenlet_getparent(PyObject *g) {
  PyObject *parent;
  import_greenlet();
  parent = (PyObject *)PyGreenlet_GetParent((PyGreenlet *)g);
  Py_XDECREF(parent);
  return parent;
}

/* banners: the references meinheld.spawn() keeps to its running greenlets */
static PyObject *spawned = NULL;

int greenlet_keep_spawned(PyObject *g) {
  if (spawned == NULL && (spawned = PySet_New(NULL)) == NULL) {
    return -1;
  }
  return PySet_Add(spawned, g);
}

void greenlet_release_if_dead(PyObject *g) {
  if (spawned != NULL && greenlet_dead(g)) {
    if (PySet_Discard(spawned, g) < 0) {
      PyErr_Clear();
    }
  }
}""",
    ),
    (
        "meinheld/server/greensupport.c",
        """int greenlet_dead(PyObject *g) {
  if (PyGreenlet_ACTIVE((PyGreenlet *)g) ||
      !PyGreenlet_STARTED((PyGreenlet *)g)) {""",
        """int greenlet_dead(PyObject *g) {
  import_greenlet();
  if (PyGreenlet_ACTIVE((PyGreenlet *)g) ||
      !PyGreenlet_STARTED((PyGreenlet *)g)) {""",
    ),
    (
        "meinheld/server/greensupport.h",
        """int greenlet_dead(PyObject *g);""",
        """int greenlet_dead(PyObject *g);
int greenlet_keep_spawned(PyObject *g);
void greenlet_release_if_dead(PyObject *g);""",
    ),
    (
        "meinheld/server/server.c",
        """  Py_XDECREF(res);
  if (greenlet_dead(greenlet)) {
    Py_DECREF(greenlet);
  }
}""",
        """  Py_XDECREF(res);
  greenlet_release_if_dead(greenlet);
}""",
    ),
    (
        "meinheld/server/server.c",
        """  res = internal_schedule_call(0, func, func_args, func_kwargs, greenlet);
  Py_XDECREF(res);""",
        """  res = internal_schedule_call(0, func, func_args, func_kwargs, greenlet);
  Py_XDECREF(res);
  /* banners: the spawned greenlet's own reference, dropped once it is dead */
  if (res == NULL || greenlet_keep_spawned(greenlet) < 0) {
    Py_DECREF(greenlet);
    return NULL;
  }
  Py_DECREF(greenlet);""",
    ),
    (
        "meinheld/server/timer.c",
        """      res = greenlet_switch(timer->greenlet, timer->args, timer->kwargs);
      if (greenlet_dead(timer->greenlet)) {
        Py_DECREF(timer->greenlet);
      }""",
        """      res = greenlet_switch(timer->greenlet, timer->args, timer->kwargs);
      greenlet_release_if_dead(timer->greenlet);""",
    ),
    # 7. Python 3.13 removed PyEval_CallObject(WithKeywords) and
    #    Py_TRASHCAN_SAFE_BEGIN/END (issue 23): their replacements exist since 3.8.
    (
        "meinheld/server/response.c",
        "data = PyEval_CallObject(close, args);",
        "data = PyObject_Call(close, args, NULL);",
    ),
    (
        "meinheld/server/response.c",
        "result = PyEval_CallObject(method, (PyObject *)NULL);",
        "result = PyObject_CallNoArgs(method);",
    ),
    (
        "meinheld/server/timer.c",
        """      res = PyEval_CallObjectWithKeywords(timer->callback, timer->args,
                                          timer->kwargs);""",
        """      res = PyObject_Call(timer->callback, timer->args, timer->kwargs);""",
    ),
    (
        "meinheld/server/timer.c",
        """  Py_TRASHCAN_SAFE_BEGIN(self);
  TimerObject_clear(self);
  PyObject_GC_Del(self);
  Py_TRASHCAN_SAFE_END(self);""",
        """  Py_TRASHCAN_BEGIN(self, TimerObject_dealloc);
  TimerObject_clear(self);
  PyObject_GC_Del(self);
  Py_TRASHCAN_END;""",
    ),
    # 8. Request greenlets are reused (issue 23).  A fresh greenlet a request
    #    cost CPython a new 16 KiB frame stack (an mmap and a munmap a request,
    #    seen with strace).  A pooled greenlet runs requests in a loop and parks
    #    itself between them (at most GREENLET_POOL_MAX idle); each request gets
    #    a fresh contextvars Context, as a new greenlet would.  While parked it
    #    only accepts a request from call_wsgi_handler (a marker tuple): a value
    #    or an exception from anything else (a finished meinheld.spawn() child,
    #    whose parent it is, or a stale resume) is logged if an error and handed
    #    on to its parent, where upstream's dead greenlet would have sent it.
    #    Measured with measure.py (bench/reference_app.py on 2 workers, wrk
    #    -t2 -c64 -d10s, builds alternated in one run, on a shared 2-core box
    #    with a load average of 6-11: req/s swings with the neighbours, worker
    #    CPU a request is the steady figure).  Two runs of 2 rounds each:
    #      banners1 (before):      33.5 35.3 35.7 31.3 us CPU a request
    #      banners2 without pool:  36.0 37.2 30.3 33.4 us
    #      banners2 (this):        20.8 23.3 24.6 22.5 us  (about -33%)
    #      req/s, same order: 11406 10040 14294 9622 / 10606 11578 24275 8181 /
    #                         17703 20718 15015 11333
    #    strace: no mmap/munmap a request (was one of each, 16 KiB).
    (
        "meinheld/server/server.c",
        """static void call_wsgi_handler(client_t *client) {""",
        """#ifdef WITH_GREENLET
#define GREENLET_POOL_MAX 64
static PyObject *greenlet_pool[GREENLET_POOL_MAX];
static int greenlet_pool_len = 0;
static PyObject *pooled_handler_func = NULL;

static PyObject *pooled_handler(PyObject *self, PyObject *args) {
  PyObject *got = args, *call_args, *ctx, *res, *current, *hub;

  Py_INCREF(got);
  for (;;) {
    call_args = PyTuple_GetSlice(got, 1, 2);
    Py_DECREF(got);
    if (call_args == NULL) {
      return NULL;
    }
    ctx = PyContext_New();
    if (ctx == NULL || PyContext_Enter(ctx) < 0) {
      Py_XDECREF(ctx);
      Py_DECREF(call_args);
      return NULL;
    }
    res = app_handler(NULL, call_args);
    Py_DECREF(call_args);
    if (PyContext_Exit(ctx) < 0) {
      PyErr_Clear();
    }
    Py_DECREF(ctx);
    if (res == NULL || greenlet_pool_len >= GREENLET_POOL_MAX) {
      return res;
    }
    Py_DECREF(res);
    current = greenlet_getcurrent(); /* the pool's reference */
    greenlet_pool[greenlet_pool_len++] = current;
    for (;;) {
      hub = greenlet_getparent(current);
      got = greenlet_switch(hub, hub_switch_value, NULL);
      if (got != NULL && PyTuple_CheckExact(got) && PyTuple_GET_SIZE(got) == 2 &&
          PyTuple_GET_ITEM(got, 0) == pooled_handler_func) {
        break; /* the next request (call_wsgi_handler took it from the pool) */
      }
      if (got == NULL) {
        call_error_logger();
      }
      Py_XDECREF(got);
    }
  }
}

static PyMethodDef pooled_handler_def = {"_pooled_handler", (PyCFunction)pooled_handler,
                                         METH_VARARGS, 0};
#endif

static void call_wsgi_handler(client_t *client) {""",
    ),
    (
        "meinheld/server/server.c",
        """  args = PyTuple_Pack(1, req->environ);
#ifdef WITH_GREENLET
  // new greenlet
  greenlet = greenlet_new(handler, NULL);
  // set_greenlet
  pyclient->greenlet = greenlet;
  Py_INCREF(pyclient->greenlet);
""",
        """#ifdef WITH_GREENLET
  if (pooled_handler_func == NULL) {
    pooled_handler_func = PyCFunction_NewEx(&pooled_handler_def, NULL, NULL);
    if (pooled_handler_func == NULL) {
      call_error_logger();
      return;
    }
  }
  /* banners: a parked greenlet, else a new one running pooled_handler.  Its
     parent becomes the current greenlet, as a new one's would be: a pipelined
     request is served from inside the greenlet that finished the previous one,
     which must get control back when this one finishes (or waits). */
  greenlet = NULL;
  if (greenlet_pool_len > 0) {
    PyObject *current = greenlet_getcurrent(), *ok;
    greenlet = greenlet_pool[--greenlet_pool_len];
    ok = greenlet_setparent(greenlet, current);
    Py_XDECREF(current);
    if (ok == NULL) { /* a cycle (it is an ancestor of the current one) */
      PyErr_Clear();
      greenlet_pool[greenlet_pool_len++] = greenlet;
      greenlet = NULL;
    }
    Py_XDECREF(ok);
  }
  if (greenlet == NULL) {
    greenlet = greenlet_new(pooled_handler_func, NULL);
    if (greenlet == NULL) {
      call_error_logger();
      return;
    }
  }
  args = PyTuple_Pack(2, pooled_handler_func, req->environ);
  // set_greenlet
  pyclient->greenlet = greenlet;
  Py_INCREF(pyclient->greenlet);
""",
    ),
    (
        "meinheld/server/server.c",
        """#else
  pyclient->greenlet = NULL;
  res = PyObject_CallObject(handler, args);""",
        """#else
  args = PyTuple_Pack(1, req->environ);
  pyclient->greenlet = NULL;
  res = PyObject_CallObject(handler, args);""",
    ),
]


def patch_tree(root: Path) -> None:
    for rel, old, new in PATCHES:
        path = root / rel
        text = path.read_text()
        if text.count(old) != 1:
            sys.exit(f"meinheld patch does not apply to {rel}: expected text found {text.count(old)} times")
        path.write_text(text.replace(old, new))
    # greenlet 3's own header (the installed one, which the build compiles
    # against) in place of the bundled greenlet 0.4 header (patch 6).
    import greenlet

    header = Path(greenlet.__file__).parent / "greenlet.h"
    if not header.is_file():
        sys.exit(f"{header}: greenlet's C header is missing; reinstall greenlet")
    (root / "meinheld/server/greenlet.h").write_text(header.read_text())


def fetch_sdist(into: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
         f"meinheld=={VERSION}", "--dest", str(into)],
        check=True,
    )
    sdist = into / f"meinheld-{VERSION}.tar.gz"
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if digest != SHA256:
        sys.exit(f"{sdist.name}: sha256 {digest} is not the expected {SHA256}")
    return sdist


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel-dir", type=Path, help="only build a wheel into this folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="meinheld-") as tmp:
        tmp = Path(tmp)
        with tarfile.open(fetch_sdist(tmp)) as tar:
            tar.extractall(tmp, filter="data")
        src = tmp / f"meinheld-{VERSION}"
        patch_tree(src)
        # greenlet (pinned by the project) must already be installed: its headers
        # are needed by the build, hence no build isolation.
        pip = [sys.executable, "-m", "pip"]
        if args.wheel_dir:
            cmd = [*pip, "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(args.wheel_dir), str(src)]
        else:
            cmd = [*pip, "install", "--quiet", "--no-deps", "--no-build-isolation", "--force-reinstall", str(src)]
        subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()

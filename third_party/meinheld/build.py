"""Builds and installs meinheld 1.0.2 from its PyPI sdist, with three fixes.

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
   on greenlet 3, which the project pins.

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
LOCAL = "banners1"  # PEP 440 local version: pip shows it is the patched build
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
]


def patch_tree(root: Path) -> None:
    for rel, old, new in PATCHES:
        path = root / rel
        text = path.read_text()
        if text.count(old) != 1:
            sys.exit(f"meinheld patch does not apply to {rel}: expected text found {text.count(old)} times")
        path.write_text(text.replace(old, new))


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

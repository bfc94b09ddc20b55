"""The deployment's credentials, one env file shared by every host of a deployment.

    secrets_env.py make [--owner UID:GID] FILE      create FILE (0600) once; add missing keys
    secrets_env.py exec FILE -- COMMAND [ARG...]    run COMMAND with FILE's variables set

FILE holds BANNERS_SECRET (signs the click URLs: every server behind one address must
have the same one, or a click served by one host is refused by the next), and
BANNERS_POSTBACK_TOKEN and BANNERS_ADMIN_TOKEN (the bearer tokens of POST /conversions
and of the operator pages), one `KEY=value` a line: what systemd's EnvironmentFile=
and a shell's `.` both read.  `make` never changes a value already there (it would
break every live click URL); it only adds the keys that are missing, so an older
file gains a new credential without losing the others.  `exec` is compose's way to
load it (compose reads env files on the machine that runs `docker compose`, not
from a volume); it accepts only that format, never runs the file as a shell would.

Standard library only: it runs with the image's python, or a host's python3 before
the project is installed.
"""

from __future__ import annotations

import os
import re
import secrets
import sys
from pathlib import Path

# Order is the file's order.  32 random bytes each, URL-safe text (43 characters,
# [A-Za-z0-9_-]): no quoting needed in systemd, sh, or a URL.
KEYS = ("BANNERS_SECRET", "BANNERS_POSTBACK_TOKEN", "BANNERS_ADMIN_TOKEN")
_LINE = re.compile(r"(BANNERS_[A-Z0-9_]+)=([A-Za-z0-9_.~+/=-]*)")

HEADER = """\
# The deployment's credentials (deploy/secrets_env.py).  The SAME values on every host
# of one deployment: BANNERS_SECRET signs click URLs, a host with another refuses them.
# Changing BANNERS_SECRET invalidates every click URL already served.
"""


class Malformed(ValueError):
    pass


def read(path: Path) -> dict:
    values = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.fullmatch(line)
        if not match:
            raise Malformed(f"{path}:{number}: not a BANNERS_NAME=value line")
        values[match.group(1)] = match.group(2)
    return values


def make(path: Path, owner: tuple[int, int] | None = None) -> list:
    """Creates or completes the file; returns the keys it added."""
    values = read(path) if path.exists() else {}
    missing = [key for key in KEYS if not values.get(key)]
    if not missing:
        return []
    for key in missing:
        values[key] = secrets.token_urlsafe(32)
    text = HEADER + "".join(f"{key}={value}\n" for key, value in values.items())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if owner:
            os.chown(tmp, *owner)
        if not path.exists():
            # Two first starts at once: the first one linked wins, the other keeps it.
            try:
                os.link(tmp, path)
            except FileExistsError:
                return make(path, owner)
        else:
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return missing


def _owner(text: str) -> tuple[int, int]:
    uid, _, gid = text.partition(":")
    return int(uid), int(gid or uid)


def main(argv: list) -> int:
    usage = __doc__.split("\n\n")[1]
    try:
        if len(argv) >= 2 and argv[0] == "make":
            owner = None
            if argv[1] == "--owner" and len(argv) == 4:
                owner, argv = _owner(argv[2]), [argv[0], argv[3]]
            if len(argv) != 2:
                raise IndexError
            path = Path(argv[1])
            added = make(path, owner)
            print(f"{path}: " + (f"made {', '.join(added)}" if added else "kept (every credential is there)"))
            return 0
        if len(argv) >= 4 and argv[0] == "exec" and argv[2] == "--":
            env = {**os.environ, **read(Path(argv[1]))}
            os.execvpe(argv[3], argv[3:], env)
    except (IndexError, ValueError) as exc:
        print(f"secrets_env.py: {exc}" if str(exc) else usage, file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"secrets_env.py: {exc}", file=sys.stderr)
        return 1
    print(usage, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

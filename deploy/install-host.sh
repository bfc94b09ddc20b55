#!/bin/sh
# Installs this checkout on a host for the systemd units in deploy/systemd (as root):
#   /opt/banners/src           this checkout (a symlink to it when it lives elsewhere)
#   /opt/banners/venv          the pinned dependencies, the project in place
#   /etc/systemd/system/       the units
#   /etc/banners/banners.env   the settings (an existing one is kept)
#   /etc/banners/secrets.env   the deployment's credentials (BANNERS_SECRET,
#                              BANNERS_POSTBACK_TOKEN, BANNERS_ADMIN_TOKEN): made once,
#                              0600 root; existing values are kept.  Every host behind
#                              one address needs the SAME file: copy it to the others.
#   /srv/banners/data          the data folder banners-load.path watches
# then, for example:
#   systemctl enable --now banners-redis banners-serve banners-load.path
# PYTHON names the interpreter (default python3.11); DESTDIR installs under another
# root instead (to look at the result; the venv only works at its final place).
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3.11}
root=${DESTDIR:-}
prefix=$root/opt/banners
venv=$prefix/venv

mkdir -p "$prefix"
if [ "$(cd "$prefix" && pwd)/src" != "$src" ]; then
    ln -sfn "$src" "$prefix/src"
fi
# The Makefile's install, without the test and bench extras: greenlet 3 first, then
# the project's patched build of meinheld 1.0.2 (third_party/meinheld/build.py).
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip==24.3.1 setuptools==75.6.0 wheel==0.45.1
"$venv/bin/python" -m pip install -q -c "$src/constraints.txt" greenlet
"$venv/bin/python" "$src/third_party/meinheld/build.py"
# In place: `banners serve` reads gunicorn.conf.py next to cli.py.
"$venv/bin/python" -m pip install -q -c "$src/constraints.txt" -e "$src"
"$venv/bin/banners" --version

mkdir -p "$root/etc/systemd/system" "$root/etc/banners" "$root/srv/banners/data"
for unit in "$src"/deploy/systemd/*.service "$src"/deploy/systemd/*.path "$src"/deploy/systemd/*.timer; do
    cp "$unit" "$root/etc/systemd/system/"
    chmod 0644 "$root/etc/systemd/system/$(basename "$unit")"
done
if [ ! -e "$root/etc/banners/banners.env" ]; then
    # 0600: it may hold the Redis password.
    (umask 077 && cp "$src/deploy/systemd/banners.env" "$root/etc/banners/banners.env")
fi
# Made here once (deploy/secrets_env.py), never replaced: a new BANNERS_SECRET would
# invalidate every click URL already served.  systemd reads it as root for the units.
(umask 077 && "$python" "$src/deploy/secrets_env.py" make "$root/etc/banners/secrets.env")
if [ -z "$root" ] && command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload
fi
echo "installed under ${root:-/}: enable the units this host runs (see deploy/systemd/)"

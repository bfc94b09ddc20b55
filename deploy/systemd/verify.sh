#!/bin/sh
# `systemd-analyze verify` of every unit here, failing on anything it prints.
#
# verify wants each Exec*= binary to exist and every unit named in the dependencies
# to be known.  The units name their install paths (/opt/banners/venv/bin/banners,
# /usr/bin/aws, ...), which a build machine does not have, so they are verified in a
# throw-away root: the units as they are in /etc/systemd/system, the machine's own
# system units (targets), and an empty executable at each absolute path an Exec*=
# line names.  That the real binaries run is tests/test_deploy.py's job: it runs these
# command lines against the project's venv.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
systemd_analyze=${SYSTEMD_ANALYZE:-systemd-analyze}
command -v "$systemd_analyze" >/dev/null || { echo "verify.sh: $systemd_analyze not found" >&2; exit 2; }
system_units=$(pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || echo /usr/lib/systemd/system)
[ -d "$system_units" ] || system_units=/lib/systemd/system

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/etc/systemd/system" "$root/usr/lib/systemd"
cp -R "$system_units" "$root/usr/lib/systemd/system"
set --
for unit in "$here"/*.service "$here"/*.path "$here"/*.timer; do
    cp "$unit" "$root/etc/systemd/system/"
    set -- "$@" "/etc/systemd/system/$(basename "$unit")"
done
# Exec lines: strip the key and systemd's prefixes (-@:+!), keep the program path.
sed -n 's/^Exec[A-Za-z]*=[-@:+!]*\(\/[^ ]*\).*/\1/p' "$here"/*.service | sort -u | while read -r program; do
    mkdir -p "$root$(dirname "$program")"
    printf '#!/bin/sh\n' > "$root$program"
    chmod +x "$root$program"
done

# verify prints nothing on success; it also exits 0 after some warnings, so stderr decides.
errors=$(cd "$root" && "$systemd_analyze" verify --root="$root" --man=no "$@" 2>&1 >/dev/null) || true
if [ -n "$errors" ]; then
    printf '%s\n' "$errors" >&2
    exit 1
fi
echo "systemd-analyze verify: $# units ok"

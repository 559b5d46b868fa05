#!/bin/sh
# install.sh — install fepd from this tarball on a host with neither dpkg
# nor rpm (same layout as the packages). Run as root from the unpacked
# folder:   ./install.sh             install or upgrade
#           ./install.sh --uninstall remove the program (data is kept)
# An edited /etc/fepd/fepd.toml is never overwritten: the shipped one is
# put beside it as fepd.toml.new.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
manifest=/usr/lib/fepd/installed-files
if [ "$(id -u)" != 0 ]; then
    echo "install.sh: run as root (sudo ./install.sh)" >&2
    exit 1
fi
systemd_up() { [ -d /run/systemd/system ]; }

if [ "${1:-}" = --uninstall ]; then
    if systemd_up; then systemctl disable --now fepd.service >/dev/null 2>&1 || true; fi
    if [ -f "$manifest" ]; then
        while IFS= read -r f; do
            case "$f" in /etc/*) continue ;; esac
            if [ -f "$f" ] || [ -L "$f" ]; then rm -f "$f"; fi
        done < "$manifest"
        rm -f "$manifest"
        rmdir /usr/lib/fepd /usr/share/fepd/schemas /usr/share/fepd 2>/dev/null || true
    fi
    if systemd_up; then systemctl daemon-reload || true; fi
    echo "fepd removed. Kept: /etc/fepd, /var/lib/fepd, /srv/fepd/spool, /var/log/fepd and the accounts fepd, fepd-data."
    exit 0
fi

upgrade=no
[ -x /usr/bin/fepd ] && upgrade=yes
# The accounts first, so the config can be given to group fepd.
FEPD_SETUP_ONLY=users sh "$here/root/usr/lib/fepd/setup"
# Everything but the config; existing folders (/usr, /etc…) keep their modes.
(cd "$here/root" && tar --exclude=./etc/fepd/fepd.toml -cf - .) |
    tar -C / --no-same-owner --no-overwrite-dir -xpf -
install -d -m 0750 -o root -g fepd /etc/fepd
if [ -e /etc/fepd/fepd.toml ]; then
    install -m 0640 -o root -g fepd "$here/root/etc/fepd/fepd.toml" /etc/fepd/fepd.toml.new
    echo "kept your /etc/fepd/fepd.toml; the shipped one is /etc/fepd/fepd.toml.new"
else
    install -m 0640 -o root -g fepd "$here/root/etc/fepd/fepd.toml" /etc/fepd/fepd.toml
fi
(cd "$here/root" && find . ! -type d | sed 's|^\.||') > "$manifest"
/usr/lib/fepd/setup
if systemd_up; then
    systemctl daemon-reload
    # A running fepd restarts with the new binary and migrates its state.
    [ "$upgrade" = yes ] && systemctl try-restart fepd.service || true
fi
/usr/bin/fepd --version
echo "installed. Next: edit /etc/fepd/fepd.toml, fepd check-config --config /etc/fepd/fepd.toml, systemctl enable --now fepd"

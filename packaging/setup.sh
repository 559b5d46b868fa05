#!/bin/sh
# fepd setup — run by the packages after install and upgrade (deb postinst,
# rpm %pre/%post, install.sh); installed as /usr/lib/fepd/setup. Idempotent.
#  users: the service account fepd and the data-staff group fepd-data
#         (fepd a member), as packaging/sysusers.conf declares them;
#  dirs:  /var/lib/fepd, /var/log/fepd, /srv/fepd/spool, as tmpfiles.d declares;
#  etc:   /etc/fepd and its config root-owned, readable by group fepd only.
# FEPD_SETUP_ONLY=users limits it to the accounts (rpm %pre, before the
# files that name group fepd are unpacked).
set -e

fepd_users() {
    getent group fepd-data >/dev/null 2>&1 || groupadd --system fepd-data
    getent group fepd >/dev/null 2>&1 || groupadd --system fepd
    if ! getent passwd fepd >/dev/null 2>&1; then
        nologin=/usr/sbin/nologin
        [ -x "$nologin" ] || nologin=/sbin/nologin
        useradd --system --gid fepd --home-dir /var/lib/fepd --no-create-home \
            --shell "$nologin" --comment "fepd exchange daemon" fepd
    fi
    # The daemon gives the spool's dataset folders to fepd-data.
    id -nG fepd | tr ' ' '\n' | grep -qx fepd-data || usermod -a -G fepd-data fepd
}

fepd_dirs() {
    if command -v systemd-tmpfiles >/dev/null 2>&1 && [ -f /usr/lib/tmpfiles.d/fepd.conf ]; then
        systemd-tmpfiles --create /usr/lib/tmpfiles.d/fepd.conf
    else
        install -d -m 0750 -o fepd -g fepd /var/lib/fepd /var/log/fepd
        install -d -m 0755 -o root -g root /srv/fepd
        install -d -m 0750 -o fepd -g fepd-data /srv/fepd/spool
    fi
    # The config is root's: the service may read it, never rewrite it.
    if [ -d /etc/fepd ]; then
        chown root:fepd /etc/fepd
        chmod 0750 /etc/fepd
        for f in /etc/fepd/fepd.toml /etc/fepd/fepd.toml.new; do
            if [ -f "$f" ]; then chown root:fepd "$f"; chmod 0640 "$f"; fi
        done
    fi
}

fepd_users
[ "${FEPD_SETUP_ONLY:-}" = users ] || fepd_dirs

#!/usr/bin/env bash
# Builds fepd's install media into dist/ (docs/zh/安装与运维手册.md says how to
# use each):
#   fepd_<version>_amd64.deb              Debian, Ubuntu, 统信 UOS, 银河麒麟桌面版
#   fepd-<version>-1.x86_64.rpm           openEuler, 麒麟服务器版, other RPM hosts
#   fepd-<version>-linux-x86_64.tar.gz    any systemd host: unpack, ./install.sh
#   fepd-<version>-src-vendored.tar.gz    the source with every crate (cargo vendor):
#                                         cargo build --release --offline
# The three packages install the same layout (the table in the ops guide, §1).
#
# Usage: scripts/package.sh [--binary PATH] [--out DIR] [--only deb,rpm,tar,src] [--fast]
#   --binary  package this fepd instead of building --release (tests use the debug one)
#   --fast    light compression (tests)
# Installs what it needs (dpkg-deb is on Debian; rpmbuild comes from Debian's
# `rpm` package).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

binary=""
out="$repo/dist"
only="deb,rpm,tar,src"
fast=no
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary=$(realpath "$2"); shift 2 ;;
        --out) mkdir -p "$2"; out=$(realpath "$2"); shift 2 ;;
        --only) only="$2"; shift 2 ;;
        --fast) fast=yes; shift ;;
        *) echo "package.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
wants() { case ",$only," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/fepd-package.XXXXXX")
trap 'rm -rf "$work"' EXIT

need() { # command, Debian package
    command -v "$1" >/dev/null 2>&1 && return 0
    echo "== installing $2 (for $1)"
    if [ -z "${FEPD_APT_UPDATED:-}" ]; then apt-get update -qq; FEPD_APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}

if [ -z "$binary" ] && { wants deb || wants rpm || wants tar; }; then
    echo "== cargo build --release --locked"
    nice -n 5 cargo build --release --locked
    binary="$repo/target/release/fepd"
fi

# One staged tree per flavour (they differ only in where zsh looks).
stage() { # flavour (deb|rpm), destination
    local flavour=$1 root=$2
    install -D -m 0755 "$binary" "$root/usr/bin/fepd"
    strip "$root/usr/bin/fepd"
    install -D -m 0755 packaging/setup.sh "$root/usr/lib/fepd/setup"
    install -D -m 0640 config/fepd.etc.toml "$root/etc/fepd/fepd.toml"
    chmod 0750 "$root/etc/fepd"
    install -D -m 0644 systemd/fepd.service "$root/usr/lib/systemd/system/fepd.service"
    install -D -m 0644 packaging/sysusers.conf "$root/usr/lib/sysusers.d/fepd.conf"
    install -D -m 0644 packaging/tmpfiles.conf "$root/usr/lib/tmpfiles.d/fepd.conf"
    install -d -m 0755 "$root/usr/share/fepd/schemas"
    install -m 0644 schemas/* "$root/usr/share/fepd/schemas/"
    local doc="$root/usr/share/doc/fepd"
    install -D -m 0644 README.md "$doc/README.md"
    install -m 0644 config/fepd.example.toml "$doc/fepd.example.toml"
    install -d -m 0755 "$doc/samples"
    install -m 0644 samples/* "$doc/samples/"
    if [ -d docs ]; then
        (cd docs && find . -type f -name '*.md') | while IFS= read -r f; do
            install -D -m 0644 "docs/$f" "$doc/$f"
        done
    fi
    install -d -m 0755 "$root/usr/share/man/man1"
    "$root/usr/bin/fepd" man | gzip -9n > "$root/usr/share/man/man1/fepd.1.gz"
    chmod 0644 "$root/usr/share/man/man1/fepd.1.gz"
    install -d -m 0755 "$root/usr/share/bash-completion/completions" \
        "$root/usr/share/fish/vendor_completions.d"
    "$root/usr/bin/fepd" completions bash > "$root/usr/share/bash-completion/completions/fepd"
    "$root/usr/bin/fepd" completions fish > "$root/usr/share/fish/vendor_completions.d/fepd.fish"
    local zsh="$root/usr/share/zsh/site-functions"
    [ "$flavour" = deb ] && zsh="$root/usr/share/zsh/vendor-completions"
    install -d -m 0755 "$zsh"
    "$root/usr/bin/fepd" completions zsh > "$zsh/_fepd"
    find "$root/usr/share" -type f -exec chmod 0644 {} +
    find "$root" -type d ! -path "$root/etc/fepd" -exec chmod 0755 {} +
}

# The oldest glibc the binary runs on: the newest GLIBC_x.y symbol it uses.
glibc_needed() {
    objdump -T "$1" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n1
}

if wants deb; then
    need dpkg-deb dpkg
    need objdump binutils
    root="$work/deb"
    stage deb "$root"
    install -d -m 0755 "$root/DEBIAN"
    install -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm "$root/DEBIAN/"
    echo /etc/fepd/fepd.toml > "$root/DEBIAN/conffiles"
    size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
    cat > "$root/DEBIAN/control" <<EOF
Package: fepd
Version: $version
Architecture: amd64
Maintainer: fepd maintainers <fepd@localhost>
Section: net
Priority: optional
Installed-Size: $size
Depends: libc6 (>= $(glibc_needed "$root/usr/bin/fepd")), passwd
Recommends: systemd
Description: 前置机 exchange daemon: collect, validate and forward government data
 fepd collects government business data dropped on an exchange host,
 validates it against per-dataset schemas and forwards it in batches to
 the resource library, with a hash-chained exchange log auditors can
 verify. Guides in Chinese: /usr/share/doc/fepd/zh/.
EOF
    deb="$out/fepd_${version}_amd64.deb"
    if [ "$fast" = yes ]; then z=(-Zgzip -z1); else z=(-Zxz); fi
    dpkg-deb --root-owner-group "${z[@]}" --build "$root" "$deb" >/dev/null
    echo "== $deb"
fi

if wants rpm; then
    need rpmbuild rpm
    root="$work/rpm-root"
    stage rpm "$root"
    top="$work/rpmbuild"
    mkdir -p "$top"/{BUILD,RPMS,SOURCES,SPECS,SRPMS,BUILDROOT}
    if [ "$fast" = yes ]; then payload=w1.gzdio; else payload=w6.xzdio; fi
    rpmbuild -bb --quiet \
        --define "_topdir $top" \
        --define "fepd_version $version" \
        --define "fepd_stage $root" \
        --define "fepd_setup $repo/packaging/setup.sh" \
        --define "debug_package %{nil}" \
        --define "__os_install_post %{nil}" \
        --define "_binary_payload $payload" \
        --define "_build_id_links none" \
        packaging/rpm/fepd.spec
    cp "$top/RPMS/x86_64/fepd-$version-1.x86_64.rpm" "$out/"
    echo "== $out/fepd-$version-1.x86_64.rpm"
fi

if wants tar; then
    name="fepd-$version-linux-x86_64"
    dir="$work/$name"
    stage rpm "$dir/root"
    install -m 0755 packaging/tar/install.sh "$dir/install.sh"
    tgz="$out/$name.tar.gz"
    if [ "$fast" = yes ]; then gz="gzip -1"; else gz="gzip -9"; fi
    tar -C "$work" --owner=0 --group=0 --numeric-owner -cf - "$name" | $gz > "$tgz"
    echo "== $tgz"
fi

if wants src; then
    name="fepd-$version"
    dir="$work/src/$name"
    mkdir -p "$dir"
    # The committed tree (no target/, no local state), then every crate.
    git archive --format=tar HEAD | tar -C "$dir" -xf -
    echo "== cargo vendor"
    mkdir -p "$dir/.cargo"
    # cargo vendor prints the source replacement for .cargo/config.toml on stdout.
    (cd "$dir" && cargo vendor --locked vendor 2>/dev/null) > "$dir/.cargo/config.toml"
    grep -q "replace-with" "$dir/.cargo/config.toml"
    tgz="$out/$name-src-vendored.tar.gz"
    tar -C "$work/src" --owner=0 --group=0 --numeric-owner -cf - "$name" | gzip -6 > "$tgz"
    echo "== $tgz (build: tar xzf $(basename "$tgz") && cd $name && cargo build --release --offline)"
fi

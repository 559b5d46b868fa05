#!/usr/bin/env bash
# Screenshots of the web console's main pages (README "Web console"), each
# as the role that uses it, through headless Chromium: runs the browser
# test (tests/it/console_browser.rs) with FEPD_CONSOLE_SHOTS set, which
# saves one PNG per page. Needs Debian's chromium and chromium-driver, and a
# CJK font for the pages to be legible (fonts-wqy-zenhei or fonts-noto-cjk).
#
#   scripts/console-shots.sh [DIR]     (default target/console-shots)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/console-shots}"
mkdir -p "$out"
if ! fc-list :lang=zh 2>/dev/null | grep -q .; then
  echo "note: no CJK font installed (apt-get install fonts-wqy-zenhei): Chinese text will show as boxes" >&2
fi
FEPD_CONSOLE_SHOTS="$(realpath "$out")" cargo test --test it console_browser::
ls -l "$out"

#!/usr/bin/env bash
# The kill harness (issue 5): SIGKILL fepd at random moments, restart it,
# over and over, on generated input for both sinks; then compare what the
# library holds with the input. Prints, per sink:
#   kills, resumed files, records, invalid, delivered, lost, duplicated-in-effect
# CI runs the short form (20 kills per sink) as part of `cargo test`.
# Usage: scripts/killtest.sh [KILLS]   (default 200)
set -euo pipefail
cd "$(dirname "$0")/.."
FEPD_KILLS="${1:-200}" cargo test --test it killtest -- --nocapture --test-threads 1 2>&1 \
  | grep -E "sink:|test result"

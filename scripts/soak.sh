#!/usr/bin/env bash
# Long form of the exactly-once check (issue 3): 100,000 generated records
# pushed to `fepd simulate-library` with 30 % of pushes answered 503 and
# 10 % of answers dropped after the library stored the batch. Prints
#   delivered = N, expected = N, lost = 0, delivered-in-effect-twice = 0
# CI runs the same test with 5,000 records (cargo test).
set -euo pipefail
cd "$(dirname "$0")/.."
FEPD_SOAK_RECORDS="${1:-100000}" cargo test --release --test it -- \
  --exact push::exactly_once_in_effect_under_faults --nocapture 2>&1 \
  | grep -E "delivered =|test result"

#!/usr/bin/env bash
# Fault suite: runs test/faults/*.case.ts one after another (test/faults/run.ts),
# prints the results table and writes docs/reliability.md. Arguments go to the
# runner: --seed N (replay), --ops N, --long, --case SUBSTRING, --no-doc.
set -euo pipefail
cd "$(dirname "$0")/.."
exec node --import ./node_modules/@tapjs/typescript/dist/esm/import.mjs test/faults/run.ts "$@"

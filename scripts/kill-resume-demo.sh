#!/usr/bin/env bash
# SIGKILL the embedded demo (`ortrain train --demo`, 189 steps) at N seeded
# moments - random times, checkpoint rotations, checkpoint saves and the
# final save, seen through inotify - and resume each killed run: every
# resumed run must end bit-identical to an uninterrupted one (final model,
# every kept checkpoint's weights and optimizer state, predictions), and no
# incomplete checkpoint may ever be visible under its final name.
#
#   scripts/kill-resume-demo.sh [KILLS [SEED]]     (defaults 50 and 1)
#
# It runs cmd/ortrain's TestKillResumeDemo, which CI runs with 3 kills on a
# one-epoch demo; about 40 s per kill on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
export ORTRAIN_ORT_LIB="$(scripts/fetch-onnxruntime.sh)"
export ORTRAIN_KILLS="${1:-50}" ORTRAIN_KILL_SEED="${2:-1}" ORTRAIN_KILL_FULL_DEMO=1
exec go test -count=1 -timeout 180m -run '^TestKillResumeDemo$' -v ./cmd/ortrain/ 2>&1 | grep -E '^(---|ok|FAIL|panic)|killresume_test'

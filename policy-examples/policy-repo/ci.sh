#!/bin/sh
# SPDX-License-Identifier: MIT
# What a pull request's CI runs in a policy repository: the policy loads, its
# tests pass, and the pull request gets what the change does to every
# destination (policy-diff.md, to post as a comment). Offline: no listener,
# no spool, no DNS.
#
#   TERN=tern BASE=origin/main ./ci.sh
set -eu
cd "$(dirname "$0")"
TERN=${TERN:-tern}
BASE=${BASE:-origin/main}

"$TERN" policy check policy.lua
"$TERN" policy test --policy policy.lua

# tern policy diff: 0 no change, 1 changes (printed), 2 an error (either revision fails to load).
status=0
"$TERN" policy diff --policy policy.lua "$BASE" --markdown > policy-diff.md || status=$?
case $status in
0) echo "no change in delivery decisions against $BASE" ;;
1) cat policy-diff.md ;;
*) echo "tern policy diff against $BASE failed" >&2; exit 2 ;;
esac

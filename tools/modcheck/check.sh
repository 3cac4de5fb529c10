#!/usr/bin/env bash
# Fails when a module's go.mod/go.sum is not what the images build with.
# Images build each service with GOWORK=off, so every module must be tidy on
# its own (replace lines for the workspace modules it needs), and
# `go work sync` must have nothing left to change: then the images run the
# dependency versions the tests ran. Fix with `go tool task tidy`.
set -euo pipefail
cd "$(dirname "$0")/../.."
fail=0
for d in $(go list -m -f '{{.Dir}}'); do
  if ! out=$(cd "$d" && GOWORK=off go mod tidy -diff 2>&1); then
    echo "modcheck: ${d#$PWD/} is not tidy without the workspace:" >&2
    echo "$out" | head -20 >&2
    fail=1
  fi
done
snap=$(mktemp -d)
trap 'rm -rf "$snap"' EXIT
files=$(git ls-files '*go.mod' '*go.sum' go.work go.work.sum)
tar -cf "$snap/before.tar" $files
go work sync
mkdir "$snap/before" && tar -xf "$snap/before.tar" -C "$snap/before"
for f in $files; do
  if ! cmp -s "$f" "$snap/before/$f"; then
    echo "modcheck: go work sync changed $f (commit the result of go tool task tidy)" >&2
    fail=1
  fi
done
if [ "$fail" != 0 ]; then
  echo "modcheck: run 'go tool task tidy' and commit the go.mod/go.sum changes" >&2
  exit 1
fi
echo "modcheck: every module is tidy on its own and go work sync changes nothing"

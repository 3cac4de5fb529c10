#!/usr/bin/env bash
# walkthrough.sh [DOC] — run every step of docs/adding-a-consumer.md, as a
# team new to the platform would, in a copy of this working tree; fail when
# any step fails. Run by tools/scaffold/check.sh (`go tool task
# scaffold:check`, part of `go tool task test`).
#
# The steps are the doc's fenced blocks whose info string is `sh step`,
# run in order with bash -euo pipefail from the copy's root:
#
#   ```sh step            run; it must exit 0
#   ```sh step edit       stands for the hand edits: run like a step, and
#                         what it changes is measured (below)
#   ```sh step background start and leave running (the local stack) until
#                         the last step has run, then stop it (SIGTERM to
#                         its process group); it must not exit before
#
# Every other block is prose. The copy is a git repository committed after
# each step, so the hand edits are measured with `git diff --numstat`: at
# most 3 files changed inside the consumer's folder, fewer than 80 lines
# added there, and outside it nothing but services/catalog/catalog.go
# (its import and its line in Services). The figures are printed.
#
# The local stack gets free loopback ports through the variables the doc
# reads (B24HUB_INGRESS_ADDR, B24HUB_MONITOR_ADDR, B24HUB_MONITOR_URL,
# B24HUB_ADMIN_ADDR, B24HUB_DEV_FAKE_ADDR; B24HUB_DEV_NATS_PORT=-1), so
# the walkthrough runs next to a `go tool task dev` of your own. It needs
# PostgreSQL at 127.0.0.1:5432 like every integration test: without it the
# local-stack steps fail, under CI=true or not.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd -P)"
doc="${1:-$root/docs/adding-a-consumer.md}"
work="$(mktemp -d "${TMPDIR:-/tmp}/b24hub-walkthrough.XXXXXX")"
bg_pids=()
cleanup() {
  for pid in "${bg_pids[@]}"; do
    kill -TERM -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  # The local stack's database belongs to the copy's data dir; its name is
  # in the data dir (services/devstack/database.go).
  rm -rf "$work"
}
trap cleanup EXIT

# The steps, each NUL-terminated as "KIND\tSCRIPT".
steps="$work/steps"
awk '
  /^```sh step/ { kind = $3; if (kind == "") kind = "run"; body = ""; inblock = 1; next }
  inblock && /^```/ { printf "%s\t%s%c", kind, body, 0; inblock = 0; next }
  inblock { body = body $0 "\n" }
' "$doc" >"$steps"
n=$(tr -cd '\0' <"$steps" | wc -c)
if ((n < 5)); then
  echo "walkthrough: only $n steps in $doc" >&2
  exit 1
fi

# A copy of the working tree as git sees it (tracked and untracked, not
# ignored), with the pinned tools.
tree="$work/b24hub"
mkdir -p "$tree"
(cd "$root" && git ls-files -z -co --exclude-standard | xargs -0 -I{} find {} -maxdepth 0 -type f -print0 |
  tar --null -T - -cf -) | tar -xf - -C "$tree"
[[ -e "$root/.bin" ]] && ln -s "$(cd "$root/.bin" && pwd -P)" "$tree/.bin"
cd "$tree"
git init -q
git config user.email walkthrough@b24hub.invalid
git config user.name walkthrough
git config core.excludesFile /dev/null
git add -A
git commit -qm "before the walkthrough"

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
export B24HUB_INGRESS_ADDR="127.0.0.1:$(freeport)"
export B24HUB_MONITOR_ADDR="127.0.0.1:$(freeport)"
export B24HUB_MONITOR_URL="http://$B24HUB_MONITOR_ADDR"
export B24HUB_ADMIN_ADDR="127.0.0.1:$(freeport)"
export B24HUB_DEV_FAKE_ADDR="127.0.0.1:$(freeport)"
export B24HUB_DEV_NATS_PORT=-1

edits=()
i=0
start=$SECONDS
while IFS=$'\t' read -r -d '' kind script; do
  i=$((i + 1))
  echo "walkthrough: step $i ($kind):"
  sed 's/^/    /' <<<"$script"
  case "$kind" in
  background)
    log="$work/background-$i.log"
    setsid bash -euo pipefail -c "$script" >"$log" 2>&1 &
    bg_pids+=($!)
    ;;
  run | edit)
    before=$(git rev-parse HEAD)
    if ! bash -euo pipefail -c "$script"; then
      echo "walkthrough: step $i failed" >&2
      for pid in "${bg_pids[@]}"; do
        echo "--- last lines of the background step (pid $pid):" >&2
        tail -n 40 "$work"/background-*.log >&2 || true
      done
      exit 1
    fi
    git add -A
    git commit -qm "step $i" --allow-empty
    [[ $kind == edit ]] && edits+=("$before..$(git rev-parse HEAD)")
    ;;
  *)
    echo "walkthrough: step $i: unknown kind $kind (run, edit or background)" >&2
    exit 1
    ;;
  esac
  for pid in "${bg_pids[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "walkthrough: the background step (pid $pid) exited:" >&2
      tail -n 40 "$work"/background-*.log >&2
      exit 1
    fi
  done
done <"$steps"

# The measure of the hand edits.
if ((${#edits[@]} == 0)); then
  echo "walkthrough: no 'sh step edit' block: nothing to measure" >&2
  exit 1
fi
stats="$work/numstat"
for r in "${edits[@]}"; do git diff --numstat "$r"; done |
  awk -F'\t' '{ add[$3] += $1; del[$3] += $2 } END { for (f in add) printf "%s\t%s\t%s\n", add[f], del[f], f }' | sort -k3 >"$stats"
folder=$(awk -F'\t' '$3 ~ /^services\/[^/]+\// && $3 !~ /^services\/catalog\// { split($3, p, "/"); print p[1] "/" p[2] }' "$stats" | sort -u)
if [[ $(wc -l <<<"$folder") != 1 || -z $folder ]]; then
  echo "walkthrough: the hand edits touch no single consumer folder:" >&2
  cat "$stats" >&2
  exit 1
fi
inside_files=$(awk -F'\t' -v d="$folder/" 'index($3, d) == 1' "$stats" | wc -l)
inside_lines=$(awk -F'\t' -v d="$folder/" 'index($3, d) == 1 { s += $1 } END { print s + 0 }' "$stats")
outside=$(awk -F'\t' -v d="$folder/" 'index($3, d) != 1 { print $3 }' "$stats")
outside_lines=$(awk -F'\t' -v d="$folder/" 'index($3, d) != 1 { s += $1 + $2 } END { print s + 0 }' "$stats")
echo "walkthrough: hand edits: $inside_files files and $inside_lines added lines in $folder; outside it: ${outside:-nothing} ($outside_lines lines)"
sed 's/^/    /' "$stats"
fail=0
((inside_files <= 3)) || { echo "walkthrough: $inside_files files edited in $folder, want at most 3" >&2; fail=1; }
((inside_lines < 80)) || { echo "walkthrough: $inside_lines lines written in $folder, want fewer than 80" >&2; fail=1; }
if [[ -n $outside && $outside != services/catalog/catalog.go ]]; then
  echo "walkthrough: hand edits outside $folder besides services/catalog/catalog.go: $outside" >&2
  fail=1
fi
((outside_lines <= 2)) || { echo "walkthrough: $outside_lines lines changed outside $folder, want the import and the line in Services" >&2; fail=1; }
((fail == 0)) || exit 1
echo "walkthrough: $i steps of $doc ok in $((SECONDS - start))s"

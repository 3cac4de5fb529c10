#!/usr/bin/env bash
# new-consumer.sh NAME [EVENTS] — generate services/NAME, a working, tested
# consumer module built on libs/consumer, from tools/scaffold/template.
#
#   NAME    lower-case service name, e.g. invoice-sync (letters, digits, '-')
#   EVENTS  comma-separated raw events, default ONCRMDEALUPDATE
#
# Run from the repository root (the Taskfile does). It refuses to overwrite
# an existing directory, runs `go mod tidy` and the generated tests, and adds
# the module to go.work unless SCAFFOLD_NO_WORK=1.
set -euo pipefail

name="${1:-}"
events="${2:-ONCRMDEALUPDATE}"
if [[ ! "$name" =~ ^[a-z][a-z0-9-]{1,40}$ ]]; then
  echo "usage: $0 NAME [EVENTS]   (NAME: lower-case letters, digits and '-', e.g. invoice-sync)" >&2
  exit 2
fi
if [[ ! "$events" =~ ^[A-Z0-9_]+(,[A-Z0-9_]+)*$ ]]; then
  echo "EVENTS must be comma-separated upper-case event codes, e.g. ONCRMDEALADD,ONCRMDEALUPDATE" >&2
  exit 2
fi
root="$(cd "$(dirname "$0")/../.." && pwd)"
dest="${SCAFFOLD_DEST:-$root/services}/$name"
if [[ -e "$dest" ]]; then
  echo "$dest already exists" >&2
  exit 1
fi
pkg="${name//-/}"
envname="$(tr 'a-z-' 'A-Z_' <<<"$pkg")"
schema="${name//-/_}"
first="${events%%,*}"
eventlist="$(sed 's/[^,]*/"&"/g; s/,/, /g' <<<"$events")"
template="$root/tools/scaffold/template"

while IFS= read -r -d '' src; do
  rel="${src#"$template"/}"
  rel="${rel//__NAME__/$name}"
  rel="${rel%.tmpl}"
  mkdir -p "$dest/$(dirname "$rel")"
  sed -e "s/__NAME__/$name/g; s/__PKG__/$pkg/g; s/__ENV__/$envname/g; s/__SCHEMA__/$schema/g" \
      -e "s/__EVENTLIST__/$eventlist/g; s/__EVENTS__/${events//,/, }/g; s/__FIRSTEVENT__/$first/g" \
      "$src" >"$dest/$rel"
done < <(find "$template" -type f -print0)

cd "$dest"
GOWORK=off GOFLAGS=-mod=mod go mod tidy >/dev/null
gofmt -l . | (! grep .) || { echo "generated code is not gofmt-clean" >&2; exit 1; }
GOWORK=off go vet ./...
GOWORK=off go test ./...
if [[ "${SCAFFOLD_NO_WORK:-}" != 1 ]]; then
  (cd "$root" && go work use "./services/$name")
fi
echo "generated services/$name: start in internal/consumer/handler/handler.go (docs/adding-a-consumer.md)"

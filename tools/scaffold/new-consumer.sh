#!/usr/bin/env bash
# new-consumer.sh NAME [EVENTS] — generate services/NAME, a working, tested
# consumer built on libs/consumer, from tools/scaffold/template.
#
#   NAME    lower-case service name, e.g. invoice-sync (letters, digits, '-')
#   EVENTS  comma-separated raw events, default ONCRMDEALUPDATE
#
# Run from anywhere (the Taskfile runs it from the repository root). It
# refuses to overwrite an existing directory. Inside the repository the
# consumer is a package tree of the services module, shaped like the
# shipped consumers (no go.mod of its own); the script vets it and runs its
# tests as the image build sees it (GOWORK=off).
#
#   SCAFFOLD_DEST=DIR   generate DIR/NAME instead of services/NAME, for a
#                       consumer outside the repository (a temporary
#                       directory for a check, or a team's own repository):
#                       it is then a module of its own whose replace lines
#                       point at this repository's libs (absolute paths);
#                       the script tidies it too. DIR inside the repository
#                       must be its services directory.
#
# Deploying it is one line in services/catalog, then `go tool task render`:
# docs/adding-a-consumer.md walks through it.
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

root="$(cd "$(dirname "$0")/../.." && pwd -P)"
parent="${SCAFFOLD_DEST:-$root/services}"
mkdir -p "$parent"
parent="$(cd "$parent" && pwd -P)"
dest="$parent/$name"
if [[ -e "$dest" ]]; then
  echo "$dest already exists" >&2
  exit 1
fi
inside=0
if [[ "$dest" == "$root"/* ]]; then
  if [[ "$parent" != "$root/services" ]]; then
    echo "inside the repository a consumer lives in services/ (SCAFFOLD_DEST=$parent)" >&2
    exit 2
  fi
  inside=1
fi
libs="$root"
pkg="${name//-/}"
envname="$(tr 'a-z-' 'A-Z_' <<<"$pkg")"
schema="${name//-/_}"
first="${events%%,*}"
eventlist="$(sed 's/[^,]*/"&"/g; s/,/, /g' <<<"$events")"
template="$root/tools/scaffold/template"

while IFS= read -r -d '' src; do
  rel="${src#"$template"/}"
  # Inside the repository the consumer belongs to the services module.
  [[ $inside == 1 && $rel == go.mod.tmpl ]] && continue
  rel="${rel//__NAME__/$name}"
  rel="${rel//__PKG__/$pkg}"
  rel="${rel%.tmpl}"
  mkdir -p "$dest/$(dirname "$rel")"
  sed -e "s/__NAME__/$name/g; s/__PKG__/$pkg/g; s/__ENV__/$envname/g; s/__SCHEMA__/$schema/g" \
      -e "s/__EVENTLIST__/$eventlist/g; s/__EVENTS__/${events//,/, }/g; s/__FIRSTEVENT__/$first/g" \
      -e "s|__ROOT__|$libs|g" \
      "$src" >"$dest/$rel"
done < <(find "$template" -type f -print0)

if [[ $inside == 1 ]]; then
  cd "$root/services"
  pkgs="./$name/..."
else
  cd "$dest"
  pkgs=./...
  # Start from the libraries' checksums: tidy then resolves the versions the
  # libraries already use without asking the checksum database for each.
  cat "$root"/libs/go.sum "$root"/libs/*/go.sum "$root"/proto/go.sum 2>/dev/null | sort -u >go.sum
  GOWORK=off GOFLAGS=-mod=mod go mod tidy >/dev/null
fi
gofmt -l "$dest" | (! grep .) || { echo "generated code is not gofmt-clean" >&2; exit 1; }
GOWORK=off go vet "$pkgs"
GOWORK=off go test -count=1 "$pkgs"
echo "generated $dest: start in internal/consumer/handler/handler.go; docs/adding-a-consumer.md says what to change and how to deploy it"

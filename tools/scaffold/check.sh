#!/usr/bin/env bash
# check.sh — prove the consumer scaffold still produces a working service,
# twice:
#
#  1. generate one into a temporary directory (outside the repository: a
#     module of its own whose replace lines must resolve from there), with
#     new-consumer.sh's own checks (go mod tidy, gofmt, vet, every generated
#     test with GOWORK=off), check its shape, then lint it with the
#     repository's golangci-lint configuration when .bin/golangci-lint
#     exists (`go tool task tools:lint`);
#  2. run docs/adding-a-consumer.md step by step in a copy of the working
#     tree (walkthrough.sh): generate contact-mirror inside the repository,
#     write its three files, list it in services/catalog, render and check
#     its Kubernetes manifests, build it as its image does, start it in the
#     local stack and see its outcome "done" in the delivery ledger; and
#     measure the hand edits.
#
# Run by `go tool task scaffold:check`, which `go tool task test` runs. Any
# failure exits non-zero; nothing is skipped. Both need PostgreSQL like
# every integration test (the generated tests skip without it locally and
# fail under CI=true; the local stack fails without it).
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd -P)"
dir="$(mktemp -d "${TMPDIR:-/tmp}/b24hub-scaffold.XXXXXX")"
trap 'rm -rf "$dir"' EXIT

start=$SECONDS
# Two events, so the generated filter list is exercised.
SCAFFOLD_DEST="$dir" \
  bash "$root/tools/scaffold/new-consumer.sh" scaffold-check ONCRMDEALADD,ONCRMDEALUPDATE
gen="$dir/scaffold-check"

# The module must not have been added to go.work, and must build on its own.
if grep -q scaffold-check "$root/go.work"; then
  echo "scaffold check: the temporary module leaked into go.work" >&2
  exit 1
fi
# The shape of every shipped service: service.go holds the declaration and
# how it starts, main is a few lines on libs/svcmain, and the settings and
# migration shells of old (config.go, migrate.go) are not there.
for want in service.go cmd/scaffold-check/main.go conformance_test.go cmd/scaffold-check/command_test.go; do
  [[ -f "$gen/$want" ]] || { echo "scaffold check: $want was not generated" >&2; exit 1; }
done
for unwanted in config.go migrate.go; do
  [[ ! -e "$gen/$unwanted" ]] || { echo "scaffold check: $unwanted was generated; the shipped services have none" >&2; exit 1; }
done
grep -q 'svcmain.Main(scaffoldcheck.Command)' "$gen/cmd/scaffold-check/main.go" ||
  { echo "scaffold check: main is not svcmain.Main(<pkg>.Command)" >&2; exit 1; }
if (($(wc -l <"$gen/cmd/scaffold-check/main.go") > 12)); then
  echo "scaffold check: cmd/scaffold-check/main.go has more than a few lines" >&2
  exit 1
fi
grep -q 'var Declaration = svcdecl.Service{' "$gen/service.go" ||
  { echo "scaffold check: service.go declares no svcdecl.Service" >&2; exit 1; }

lint="$root/.bin/golangci-lint"
if [[ -x "$lint" ]]; then
  (cd "$gen" && GOWORK=off "$lint" run --config "$root/.golangci.yml" ./...)
else
  echo "scaffold check: $lint not built (go tool task tools:lint); generated code not linted"
fi
echo "scaffold check: generated module ok in $((SECONDS - start))s"

bash "$root/tools/scaffold/walkthrough.sh" "$root/docs/adding-a-consumer.md"

#!/bin/sh
# Prepares the quick tour of the README: the example site as a git
# repository, the example command agent, and a projects file that ties them
# to an email address and a user. Usage: examples/quickstart.sh [DIR]
# (default data/example). Then:
#   HERMES_PROJECTS_FILE=DIR/projects.json go run ./cmd/hermes serve
set -eu
cd "$(dirname "$0")/.."
dir=${1:-data/example}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

go build -o "$dir/example-agent" ./examples/agent

rm -rf "$dir/site.git"
git init -q --bare -b main "$dir/site.git"
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
cp -R examples/site/. "$src"
git -C "$src" init -q -b main
git -C "$src" add .
git -C "$src" -c user.name=Example -c user.email=example@localhost -c commit.gpgsign=false commit -qm "The example site"
git -C "$src" push -q "$dir/site.git" main

cat > "$dir/projects.json" <<JSON
{
  "clients": [{
    "id": "amelia",
    "name": "Amelia Stamps",
    "projects": [{
      "id": "site",
      "name": "Amelia's Stamps",
      "repoUrl": "$dir/site.git",
      "defaultBranch": "main",
      "emailAddresses": ["edit@amelia.example.com"],
      "agent": {"kind": "command", "command": ["$dir/example-agent"]}
    }],
    "users": [{"id": "scott", "name": "Scott", "emails": ["scott@example.com"]}]
  }]
}
JSON
echo "example ready in $dir"
echo "next: HERMES_PROJECTS_FILE=$dir/projects.json go run ./cmd/hermes serve"

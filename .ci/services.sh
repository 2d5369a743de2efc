#!/usr/bin/env bash
# Installs (pinned) and starts the services the tests need, exporting their
# addresses. Source it: `. .ci/services.sh`; the services stop when the
# sourcing shell exits. Used by .ci/run; handy locally too.
set -euo pipefail

MAILPIT_VERSION=v1.33.1
ci_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin="$ci_dir/bin"
state=$(mktemp -d)
pids=()

stop_services() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$state"
}
trap stop_services EXIT

wait_for() { # URL, name
  for _ in $(seq 1 100); do
    if curl -fs -o /dev/null "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "$2 did not become ready at $1" >&2
  return 1
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# mailpit: the SMTP sink for outbound email tests.
if [ ! -x "$bin/mailpit" ] || ! grep -qx "$MAILPIT_VERSION" "$bin/mailpit.version" 2>/dev/null; then
  echo "installing mailpit $MAILPIT_VERSION"
  GOBIN="$bin" go install "github.com/axllent/mailpit@$MAILPIT_VERSION"
  echo "$MAILPIT_VERSION" > "$bin/mailpit.version"
fi
mp_http=$(free_port); mp_smtp=$(free_port)
# Never run `mailpit version`: it calls out to the internet.
"$bin/mailpit" --listen "127.0.0.1:$mp_http" --smtp "127.0.0.1:$mp_smtp" --database "$state/mailpit.db" \
  >"$state/mailpit.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$mp_http/api/v1/messages" mailpit
export HERMES_TEST_MAILPIT_SMTP="127.0.0.1:$mp_smtp"
export HERMES_TEST_MAILPIT_API="http://127.0.0.1:$mp_http"
echo "mailpit: smtp $HERMES_TEST_MAILPIT_SMTP, api $HERMES_TEST_MAILPIT_API"

# Chromium: the browser of the approval-page test (chromedp). Debian's own
# package, installed once (apt-get is idempotent; skipped when present).
chromium_bin=/usr/lib/chromium/chromium
if [ ! -x "$chromium_bin" ]; then
  echo "installing chromium (Debian package)"
  sudo_cmd=""
  if [ "$(id -u)" != 0 ]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium >/dev/null
fi
export HERMES_TEST_CHROMIUM="$chromium_bin"
echo "chromium: $("$chromium_bin" --version 2>/dev/null || echo "$chromium_bin")"

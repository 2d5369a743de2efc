// Command hermes is the Hermes service and its tools: serve, healthcheck,
// worker, setup, version.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "worker" {
		// A worker outlives a Hermes killed hard (its logs went to Hermes's
		// output): it must finish or release its job even when writing a
		// log line fails, rather than die of SIGPIPE.
		signal.Ignore(syscall.SIGPIPE)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "hermes:", err)
		os.Exit(exitCode(err))
	}
}

const usage = `usage: hermes <command>

commands:
  serve         run Hermes (HTTP API, background loops) on the configured backends
  worker        run an edit container's worker: the jobs of HERMES_CONTAINER_ID's input
                queue, until idle for HERMES_IDLE_TIMEOUT or SIGTERM
  setup         create what the configured backends need (the DynamoDB table, the SQLite
                schema); idempotent
  healthcheck   exit 0 when the local Hermes answers /health/ready, 1 otherwise
  version       print the version

Configuration comes from the environment; see the README.
`

// usageError is a command-line mistake: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func exitCode(err error) int {
	if _, ok := err.(usageError); ok {
		return 2
	}
	return 1
}

// run is the whole program: main only adds the process around it, so tests
// call run directly.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{"no command given"}
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], getenv, stdout, nil)
	case "worker":
		return runWorker(ctx, args[1:], getenv, stdout)
	case "setup":
		return setup(ctx, args[1:], getenv, stdout)
	case "healthcheck":
		return healthcheck(ctx, args[1:], getenv, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "hermes", version())
		return nil
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usageError{fmt.Sprintf("unknown command %q", args[0])}
}

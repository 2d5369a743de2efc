package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// baselineBody is the bare server's answer: a JSON object shaped and sized
// like a session status response (about 430 bytes).
var baselineBody = []byte(`{"sessionId":"zawwmmjvbssnblyi4znyq4lfcu","status":"initializing","threadId":"ubocg2kx44onsa6tkpem4olq2u",` +
	`"clientId":"amelia","projectId":"site","userId":"scott","containerId":"amelia_site_scott","containerStatus":"stopped",` +
	`"createdAt":"2026-11-27T00:35:04.84Z","lastActivity":"2026-11-27T00:35:04.84Z","expiresAt":"2026-11-27T01:05:04.84Z",` +
	`"previewUrl":"http://localhost:38123/preview/amelia/site/ubocg2kx44onsa6tkpem4olq2u/"}` + "\n")

// baselineServer is the hidden subcommand `hermesbench baseline-server
// -addr 127.0.0.1:0`: a bare net/http server whose one handler writes
// baselineBody for every path. It prints its address on the first line of
// standard output and stops on SIGTERM or SIGINT.
func baselineServer(args []string) error {
	fs := flag.NewFlagSet("baseline-server", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			_, _ = w.Write(baselineBody)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Println(ln.Addr().String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

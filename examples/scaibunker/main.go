// Command scaibunker is a small ScaiBunker-like service that gates its routes on
// authzd with package client/middleware. See README.md.
package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/scailabs/authzd/client"
)

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(logger); err != nil {
		logger.Error("scaibunker", "err", err)
		os.Exit(1)
	}
}

func run(logger *slog.Logger) error {
	url, token := os.Getenv("AUTHZ_URL"), os.Getenv("AUTHZ_TOKEN")
	if url == "" || token == "" {
		return errors.New("set AUTHZ_URL and AUTHZ_TOKEN (a token with the check and provision scopes)")
	}
	addr := os.Getenv("LISTEN_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8081"
	}
	// One client per process: it keeps connections to authzd open between requests.
	ac, err := client.New(url, token, client.WithTimeout(2*time.Second))
	if err != nil {
		return err
	}

	srv := &http.Server{Addr: addr, Handler: NewServer(ac, logger), ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	logger.Info("listening", "addr", addr, "authzd", url)

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}

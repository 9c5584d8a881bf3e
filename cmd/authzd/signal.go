package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/scailabs/authzd/cmd/authzd/app"
)

// stopSignal is the cause of the serving context's end when a signal ended it.
type stopSignal struct{ os.Signal }

func (s stopSignal) Error() string { return "received " + s.String() }

// signalContext ends on SIGINT or SIGTERM, with the signal as its cause.
func signalContext() (context.Context, func()) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancelCause(context.Background())
	go func() {
		select {
		case s := <-sigs:
			cancel(stopSignal{s})
		case <-ctx.Done():
		}
	}()
	return ctx, func() { signal.Stop(sigs); cancel(nil) }
}

// drain keeps serving for delay after SIGTERM, with /readyz answering 503
// draining, so that load balancers stop sending requests before the
// listener closes. SIGINT (an operator at a terminal) skips it, and so does
// a second signal during it.
func drain(ctx context.Context, m *app.Main, delay time.Duration, logger *slog.Logger) {
	if s, ok := context.Cause(ctx).(stopSignal); !ok || s.Signal != syscall.SIGTERM || delay <= 0 {
		return
	}
	again, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m.Drain()
	logger.Info("SIGTERM: serving on while draining", "AUTHZ_SHUTDOWN_DRAIN_DELAY", delay.String())
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-again.Done():
		logger.Info("second signal: drain cut short")
	}
}

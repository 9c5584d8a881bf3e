package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestHTTP(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(status) }))
	defer srv.Close()

	if err := run([]string{"-url", srv.URL}); err != nil {
		t.Errorf("200: %v, want healthy", err)
	}
	status = http.StatusServiceUnavailable
	if err := run([]string{"-url", srv.URL}); err == nil {
		t.Error("503: healthy, want an error")
	}
	srv.Close()
	if err := run([]string{"-url", srv.URL}); err == nil {
		t.Error("closed server: healthy, want an error")
	}
}

func TestGRPC(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(s, hs)
	go func() { _ = s.Serve(ln) }()
	defer s.Stop()
	addr := ln.Addr().String()

	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	if err := run([]string{"-addr=" + addr}); err != nil {
		t.Errorf("SERVING: %v, want healthy", err)
	}
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	if err := run([]string{"-addr=" + addr}); err == nil {
		t.Error("NOT_SERVING: healthy, want an error")
	}
	if err := run([]string{"-addr=" + addr, "-service", "unknown"}); err == nil {
		t.Error("unknown service: healthy, want an error")
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"-url", "http://x", "-addr", "x:1"}, {"-bogus"}} {
		if err := run(args); err == nil {
			t.Errorf("run(%q): no error", args)
		}
	}
}

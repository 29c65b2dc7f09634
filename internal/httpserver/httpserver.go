// Package httpserver serves the daemon's operational endpoints: /healthz
// (the process is alive), /readyz (it can do its work) and /metrics.
package httpserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// DefaultReadyTimeout bounds one readiness check.
const DefaultReadyTimeout = 5 * time.Second

// ReadyFunc reports why the daemon is not ready, or nil when it is.
type ReadyFunc func(ctx context.Context) error

// Server is the operational HTTP listener.
type Server struct {
	listener net.Listener
	logger   *slog.Logger
	ready    ReadyFunc
	server   *http.Server
	served   chan struct{}
}

// Listen binds addr; Serve then answers on it. Binding first means a bad or
// busy address fails the start-up, before anything else runs. metrics, when
// not nil, serves /metrics.
func Listen(addr string, ready ReadyFunc, metrics http.Handler, logger *slog.Logger) (*Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on ATIS_HTTP_ADDR=%s: %w", addr, err)
	}
	s := &Server{listener: l, logger: logger, ready: ready, served: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
	s.server = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.listener.Addr().String() }

// Serve answers requests until Shutdown. It returns at once.
func (s *Server) Serve() {
	go func() {
		defer close(s.served)
		if err := s.server.Serve(s.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("http server stopped", slog.String("error", err.Error()))
		}
	}()
}

// Shutdown stops accepting requests and waits for those in flight, up to ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.server.Shutdown(ctx)
	select {
	case <-s.served:
	case <-ctx.Done():
	}
	return err
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = fmt.Fprintln(w, "ok")
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), DefaultReadyTimeout)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := s.ready(ctx); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintln(w, "not ready:", err)
		return
	}
	_, _ = fmt.Fprintln(w, "ready")
}

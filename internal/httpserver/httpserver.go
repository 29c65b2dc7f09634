// Package httpserver serves the daemon's operational endpoints: /healthz
// (the process is alive), /readyz (it can do its work) and /metrics, and,
// when given one, the operations dashboard on every other path.
package httpserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/riverqueue/river/rivershared/startstop"
)

// DefaultReadyTimeout bounds one readiness check.
const DefaultReadyTimeout = 5 * time.Second

// ReadyFunc reports why the daemon is not ready, or nil when it is.
type ReadyFunc func(ctx context.Context) error

// Server is the operational HTTP listener.
type Server struct {
	startstop.BaseStartStop

	listener net.Listener
	logger   *slog.Logger
	ready    ReadyFunc
	server   *http.Server
}

// shutdownTimeout bounds how long Stop waits for requests in flight.
const shutdownTimeout = 5 * time.Second

// Option configures Listen.
type Option func(*http.ServeMux)

// WithUI serves ui on every path the operational endpoints do not take. A
// nil ui (the dashboard is off) serves nothing more.
func WithUI(ui http.Handler) Option {
	return func(mux *http.ServeMux) {
		if ui != nil {
			mux.Handle("/", ui)
		}
	}
}

// Listen binds addr; Start then answers on it. Binding first means a bad or
// busy address fails the start-up, before anything else runs. metrics, when
// not nil, serves /metrics.
func Listen(addr string, ready ReadyFunc, metrics http.Handler, logger *slog.Logger, opts ...Option) (*Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on ATIS_HTTP_ADDR=%s: %w", addr, err)
	}
	s := &Server{listener: l, logger: logger, ready: ready}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
	for _, o := range opts {
		o(mux)
	}
	s.server = &http.Server{Handler: limitBodies(mux), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: ReadTimeout,
		WriteTimeout: WriteTimeout, IdleTimeout: IdleTimeout, MaxHeaderBytes: MaxHeaderBytes}
	return s, nil
}

// Limits of the listener: a client that trickles its headers or body, or
// reads its answer slowly, or sends more than a form needs, is cut off
// rather than holding a connection (and the daemon's memory).
const (
	ReadTimeout    = 10 * time.Second // the whole request, body included
	WriteTimeout   = 30 * time.Second // longer than a page's query bound
	IdleTimeout    = 60 * time.Second // a kept-alive connection between requests
	MaxHeaderBytes = 16 << 10
	MaxBodyBytes   = 64 << 10 // a sign-in or an action's form
)

// limitBodies cuts every request body at MaxBodyBytes.
func limitBodies(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		h.ServeHTTP(w, r)
	})
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.listener.Addr().String() }

// Start answers requests until ctx ends or Stop; it returns at once.
// Starting twice is a no-op.
func (s *Server) Start(ctx context.Context) error {
	ctx, shouldStart, started, stopped := s.StartInit(ctx)
	if !shouldStart {
		return nil
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := s.server.Serve(s.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("http server stopped", slog.String("error", err.Error()))
		}
	}()
	go func() {
		defer stopped()
		started()
		select {
		case <-ctx.Done():
		case <-served:
		}
		// Stop accepting, and wait for the requests in flight, bounded.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
		defer cancel()
		_ = s.server.Shutdown(sctx)
		<-served
	}()
	return nil
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

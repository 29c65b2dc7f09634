// Package logging builds the daemon's slog.Logger: tint's coloured,
// human-readable lines on a terminal, JSON lines otherwise.
package logging

import (
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/lmittmann/tint"
	"golang.org/x/term"

	"github.com/atis-edu/atis-scheduler/internal/config"
)

// New returns a logger writing to w in format (config.LogFormatText,
// config.LogFormatJSON, or config.LogFormatAuto: text when w is a terminal)
// at level and above.
func New(w io.Writer, format string, level slog.Leveler) *slog.Logger {
	if format == config.LogFormatAuto {
		format = config.LogFormatJSON
		if IsTerminal(w) {
			format = config.LogFormatText
		}
	}
	if format == config.LogFormatText {
		return slog.New(tint.NewHandler(w, &tint.Options{
			Level:      level,
			NoColor:    !IsTerminal(w),
			TimeFormat: time.DateTime,
		}))
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

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
		return slog.New(tint.NewTextHandler(w, &tint.Options{
			Level:      level,
			NoColor:    !IsTerminal(w),
			TimeFormat: time.DateTime,
		}))
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: millis}))
}

// millis writes a duration in JSON as milliseconds under its key with
// "_ms" (slog writes nanoseconds: "duration":562052499); text lines show
// durations as people read them (562ms), which tint does.
func millis(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		ms := float64(a.Value.Duration().Microseconds()) / 1000
		return slog.Float64(a.Key+"_ms", ms)
	}
	return a
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

package retention

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// archive writes a table's deleted rows as gzip JSON lines under
// <dir>/<table>/. Each batch is a gzip member of its own, fsynced before the
// batch's delete commits, so the file is valid gzip after every batch, even
// if the process dies.
type archive struct {
	dir, table, runID string

	path string
	file *os.File
}

func (a *archive) write(lines []json.RawMessage) error {
	if a.file == nil {
		if err := a.open(); err != nil {
			return err
		}
	}
	gz := gzip.NewWriter(a.file)
	buf := bufio.NewWriterSize(gz, 64<<10)
	for _, l := range lines {
		if _, err := buf.Write(l); err != nil {
			return a.fail(err)
		}
		if err := buf.WriteByte('\n'); err != nil {
			return a.fail(err)
		}
	}
	if err := buf.Flush(); err != nil {
		return a.fail(err)
	}
	if err := gz.Close(); err != nil {
		return a.fail(err)
	}
	if err := a.file.Sync(); err != nil {
		return a.fail(err)
	}
	return nil
}

func (a *archive) open() error {
	dir := filepath.Join(a.dir, a.table)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	a.path = filepath.Join(dir, fmt.Sprintf("%s-%s.jsonl.gz", a.table, a.runID))
	f, err := os.OpenFile(a.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	a.file = f
	// The new file's directory entry must be durable too.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

func (a *archive) fail(err error) error { return fmt.Errorf("archive %s: %w", a.path, err) }

func (a *archive) close() error {
	if a.file == nil {
		return nil
	}
	err := a.file.Close()
	a.file = nil
	return err
}

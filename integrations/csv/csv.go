// Package csv is the `csv` integration provider, for integration_type
// data_import: a CSV file over HTTP(S), or under the daemon's import
// directory, one record per row keyed by a configured column, streamed in
// pages so that memory stays flat whatever the file's size.
package csv

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	encsv "encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/atis-edu/atis-scheduler/integrations/provider"

	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/transform"

	"github.com/atis-edu/atis-scheduler/integrations/internal/pull"
)

// Defaults and bounds of Config.
const (
	DefaultRowsPerPage = 1000
	MaxRowsPerPage     = 10_000
	DefaultTimeout     = 10 * time.Minute
)

// Encodings a Config may declare.
const (
	UTF8        = "utf-8"
	Windows1251 = "windows-1251"
	UTF16       = "utf-16"
)

// Config is the integration's config column for csv. Exactly one of URL
// and File is set.
type Config struct {
	// URL is where the file is downloaded from (http or https).
	URL string `json:"url"`
	// File is a path relative to the daemon's ATIS_IMPORT_DIR.
	File string `json:"file"`
	// IDColumn is the header of the column that holds each row's id.
	IDColumn string `json:"id_column"`
	// Delimiter is one character. Defaults to ",".
	Delimiter string `json:"delimiter"`
	// Encoding is utf-8 (a BOM is skipped), windows-1251 or utf-16 (with
	// a BOM, little or big endian). Defaults to utf-8.
	Encoding string `json:"encoding"`
	// RowsPerPage is how many rows are staged at once, 1 to 10000.
	// Defaults to 1000.
	RowsPerPage int `json:"rows_per_page"`
	// Settings: timeout_seconds bounds the whole download. Defaults to
	// DefaultTimeout.
	pull.Settings
}

// Provider is the csv provider.
type Provider struct {
	// ImportDir is the only directory whose files config.file may name
	// (ATIS_IMPORT_DIR). Empty: no file is read.
	ImportDir string
}

// Supports implements provider.Provider: data_import integrations,
// full syncs only.
func (Provider) Supports(integrationType string, _ json.RawMessage) (bool, bool) {
	return integrationType == "data_import", false
}

func parseConfig(raw json.RawMessage) (Config, error) {
	var c Config
	if len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &c); err != nil {
			return c, fmt.Errorf("csv config: %w", err)
		}
	}
	switch {
	case (c.URL == "") == (c.File == ""):
		return c, errors.New(`csv config: set one of "url" and "file"`)
	case c.IDColumn == "":
		return c, errors.New(`csv config: "id_column" is required`)
	case c.RowsPerPage < 0 || c.RowsPerPage > MaxRowsPerPage:
		return c, fmt.Errorf("csv config: rows_per_page %d is not between 1 and %d", c.RowsPerPage, MaxRowsPerPage)
	case c.TimeoutSeconds < 0, c.MaxRetries != nil && *c.MaxRetries < 0:
		return c, errors.New("csv config: timeout_seconds and max_retries must not be negative")
	}
	if c.URL != "" {
		if _, err := pull.ParseURL("csv", "url", c.URL); err != nil {
			return c, err
		}
	}
	var err error
	if c.AllowedOrigins, err = pull.ParseOrigins("csv", c.AllowedOrigins); err != nil {
		return c, err
	}
	c.Delimiter = cmp.Or(c.Delimiter, ",")
	if r, n := utf8.DecodeRuneInString(c.Delimiter); n != len(c.Delimiter) || r == '"' || r == '\r' || r == '\n' || r == utf8.RuneError {
		return c, fmt.Errorf("csv config: delimiter %q is not one character (other than a quote or a line break)", c.Delimiter)
	}
	c.Encoding = strings.ToLower(cmp.Or(c.Encoding, UTF8))
	if c.Encoding == "utf8" {
		c.Encoding = UTF8
	}
	if !slices.Contains([]string{UTF8, Windows1251, UTF16}, c.Encoding) {
		return c, fmt.Errorf("csv config: encoding %q is not one of utf-8, windows-1251, utf-16", c.Encoding)
	}
	c.RowsPerPage = cmp.Or(c.RowsPerPage, DefaultRowsPerPage)
	return c, nil
}

// Fetch implements provider.Provider.
func (p Provider) Fetch(ctx context.Context, req provider.FetchRequest, emit func(provider.Page) error) error {
	cfg, err := parseConfig(req.Config)
	if err != nil {
		return provider.ConfigError(err)
	}
	body, err := p.open(ctx, cfg, req)
	if err != nil {
		return err
	}
	defer body.Close()
	r := &reader{cfg: cfg, counted: &counter{r: body}}
	err = r.read(ctx, emit)
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, context.DeadlineExceeded) && cfg.URL != "":
		return fmt.Errorf("%w: the download took longer than timeout_seconds (%s)", err, cfg.Timeout(DefaultTimeout))
	}
	return err
}

// open returns the file's bytes: the download's body, or the file under
// ImportDir.
func (p Provider) open(ctx context.Context, cfg Config, req provider.FetchRequest) (io.ReadCloser, error) {
	if cfg.File != "" {
		return p.openFile(cfg.File)
	}
	creds, err := pull.ParseCredentials("csv", req.Credentials, pull.Bearer, pull.Basic)
	if err != nil {
		return nil, provider.ConfigError(err)
	}
	u, _ := url.Parse(cfg.URL)
	client, ctx := pull.NewClient(ctx, req.Client, pull.Options{Base: u, Settings: cfg.Settings, DefaultTimeout: DefaultTimeout,
		Credentials: creds, Accept: "text/csv, */*"})
	resp, err := client.Get(ctx, cfg.URL, 1)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// openFile opens name under ImportDir, refusing any path that leaves it
// (.., an absolute path, a symbolic link out).
func (p Provider) openFile(name string) (io.ReadCloser, error) {
	if p.ImportDir == "" {
		return nil, fmt.Errorf(`%w: csv config: "file" needs the daemon's ATIS_IMPORT_DIR, which is not set`, provider.ErrPermanent)
	}
	if filepath.IsAbs(name) || !filepath.IsLocal(name) {
		return nil, fmt.Errorf(`%w: csv config: "file" %q must be a path inside ATIS_IMPORT_DIR, without ".."`, provider.ErrPermanent, name)
	}
	root, err := os.OpenRoot(p.ImportDir)
	if err != nil {
		return nil, fmt.Errorf("csv: ATIS_IMPORT_DIR: %w", err)
	}
	defer root.Close()
	// O_NONBLOCK: opening a FIFO for reading would wait for a writer (past
	// the sync's deadline, and a shutdown's); a regular file ignores it.
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if perr := (*fs.PathError)(nil); errors.As(err, &perr) {
		err = perr.Err // the path is in the message already
	}
	if err != nil {
		return nil, fmt.Errorf("csv: file %q under ATIS_IMPORT_DIR: %w", name, err)
	}
	info, err := f.Stat()
	if err == nil && !info.Mode().IsRegular() {
		err = fmt.Errorf("%w: csv config: \"file\" %q under ATIS_IMPORT_DIR is not a regular file (%s)", provider.ErrPermanent, name, kind(info.Mode()))
	}
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

// kind names a file mode's type, for messages.
func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeDir != 0:
		return "a directory"
	case m&fs.ModeDevice != 0, m&fs.ModeCharDevice != 0:
		return "a device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return m.Type().String()
}

// counter counts the bytes read, for the sync's figures.
type counter struct {
	r io.Reader
	n int64
}

func (c *counter) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

type reader struct {
	cfg     Config
	counted *counter
	header  []string
	idCol   int
	page    provider.Page
	sent    int64 // bytes counted in pages already emitted
	last    int   // the line of the last row read
}

// decoded returns the file's text as UTF-8 in the declared encoding.
func (r *reader) decoded() (io.Reader, error) {
	switch r.cfg.Encoding {
	case Windows1251:
		return transform.NewReader(r.counted, charmap.Windows1251.NewDecoder()), nil
	case UTF16:
		return transform.NewReader(r.counted, unicode.UTF16(unicode.LittleEndian, unicode.ExpectBOM).NewDecoder()), nil
	default:
		br := bufio.NewReader(r.counted)
		if bom, _ := br.Peek(3); bytes.Equal(bom, []byte("\xef\xbb\xbf")) {
			_, _ = br.Discard(3)
		}
		return br, nil
	}
}

func (r *reader) read(ctx context.Context, emit func(provider.Page) error) error {
	text, err := r.decoded()
	if err != nil {
		return err
	}
	cr := encsv.NewReader(text)
	cr.Comma, _ = utf8.DecodeRuneInString(r.cfg.Delimiter)
	cr.FieldsPerRecord = -1 // a short or long row is an invalid record, not the end
	cr.ReuseRecord = true
	if err := r.readHeader(cr); err != nil {
		return err
	}
	r.page = provider.Page{Number: 1}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		row, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return r.describe(err)
		}
		line, _ := cr.FieldPos(0)
		r.last = line
		if err := r.add(row, line); err != nil {
			return err
		}
		if len(r.page.Records)+len(r.page.Invalid) >= r.cfg.RowsPerPage {
			if err := r.flush(emit); err != nil {
				return err
			}
		}
	}
	if len(r.page.Records)+len(r.page.Invalid) > 0 || r.page.Number == 1 {
		return r.flush(emit)
	}
	return nil
}

func (r *reader) readHeader(cr *encsv.Reader) error {
	row, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return errors.New("line 1: the file is empty: it needs a header row")
	}
	if err != nil {
		return r.describe(err)
	}
	r.header = slices.Clone(row)
	if err := r.checkText(r.header, 1); err != nil {
		return err
	}
	r.idCol = -1
	for i, name := range r.header {
		switch {
		case name == "":
			return fmt.Errorf("line 1: column %d of the header has no name", i+1)
		case slices.Index(r.header, name) != i:
			return fmt.Errorf("line 1: the header names column %q twice", name)
		case name == r.cfg.IDColumn:
			r.idCol = i
		}
	}
	if r.idCol < 0 {
		return fmt.Errorf("line 1: the header has no id_column %q (it has %s)", r.cfg.IDColumn, preview(strings.Join(r.header, r.cfg.Delimiter)))
	}
	return nil
}

// add makes a row a record, or an invalid one.
func (r *reader) add(row []string, line int) error {
	if err := r.checkText(row, line); err != nil {
		return err
	}
	switch {
	case len(row) != len(r.header):
		r.page.Invalid = append(r.page.Invalid, fmt.Sprintf("line %d: %d fields, the header has %d: %s", line, len(row), len(r.header),
			preview(strings.Join(row, r.cfg.Delimiter))))
		return nil
	case strings.TrimSpace(row[r.idCol]) == "":
		r.page.Invalid = append(r.page.Invalid, fmt.Sprintf("line %d: %q is empty: %s", line, r.cfg.IDColumn, preview(strings.Join(row, r.cfg.Delimiter))))
		return nil
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for i, v := range row {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(r.header[i])
		s, _ := json.Marshal(v)
		b.Write(k)
		b.WriteByte(':')
		b.Write(s)
	}
	b.WriteByte('}')
	r.page.Records = append(r.page.Records, provider.Record{ExternalID: strings.TrimSpace(row[r.idCol]), Payload: b.Bytes()})
	return nil
}

// checkText refuses text that is not what the declared encoding gives:
// invalid UTF-8, or (decoded from another encoding) the replacement
// character the decoder puts for bytes it cannot read.
func (r *reader) checkText(row []string, line int) error {
	for _, v := range row {
		bad := !utf8.ValidString(v)
		if r.cfg.Encoding != UTF8 {
			bad = strings.ContainsRune(v, utf8.RuneError)
		}
		if bad {
			return fmt.Errorf("line %d: bytes that are not valid %s: is the file in another encoding? (config.encoding)", line, r.cfg.Encoding)
		}
	}
	return nil
}

func (r *reader) flush(emit func(provider.Page) error) error {
	r.page.Bytes = r.counted.n - r.sent
	r.sent = r.counted.n
	if err := emit(r.page); err != nil {
		return err
	}
	r.page = provider.Page{Number: r.page.Number + 1}
	return nil
}

// describe names the line of a parse or read error.
func (r *reader) describe(err error) error {
	var perr *encsv.ParseError
	switch {
	case errors.As(err, &perr):
		return fmt.Errorf("line %d: %w", perr.Line, perr.Err)
	case errors.Is(err, unicode.ErrMissingBOM):
		return errors.New("line 1: utf-16 needs a byte order mark (FF FE or FE FF) at the start of the file")
	default:
		return fmt.Errorf("after the row on line %d: reading the file: %w", max(r.last, 1), err)
	}
}

func preview(s string) string {
	if len(s) > 80 {
		return fmt.Sprintf("%q…", s[:80])
	}
	return fmt.Sprintf("%q", s)
}

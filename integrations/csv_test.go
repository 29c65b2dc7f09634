package integrations_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/unicode"
)

// students is a class list with Azerbaijani and Russian names and a
// quoted field that spans two lines.
const students = "id,name,grade\r\n1,Əli Həsənov,10-A\r\n2,Иван Петров,10-B\r\n3,\"Leyla\nMəmmədova\",11-A\r\n"

// fileServer serves body, asking for basic credentials when pass is set.
func fileServer(t *testing.T, body []byte, pass string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, p, _ := r.BasicAuth(); pass != "" && p != pass {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "text/csv")
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestCSV(t *testing.T) {
	t.Parallel()

	win1251, err := charmap.Windows1251.NewEncoder().String("id;name;grade\r\n1;Иван Петров;10-B\r\n2;Мария Иванова;11-A\r\n")
	require.NoError(t, err)
	utf16le, err := unicode.UTF16(unicode.LittleEndian, unicode.UseBOM).NewEncoder().String(students)
	require.NoError(t, err)
	utf16be, err := unicode.UTF16(unicode.BigEndian, unicode.UseBOM).NewEncoder().String(students)
	require.NoError(t, err)

	for _, tt := range []struct {
		name, body string
		config     map[string]any
		want       map[string]string // external id -> name
	}{
		{"UTF8WithBOM", "\xef\xbb\xbf" + students, nil, map[string]string{"1": "Əli Həsənov", "3": "Leyla\nMəmmədova"}},
		{"UTF8", students, map[string]any{"encoding": "UTF-8"}, map[string]string{"2": "Иван Петров"}},
		{"Windows1251Semicolon", win1251, map[string]any{"encoding": "windows-1251", "delimiter": ";"}, map[string]string{"2": "Мария Иванова"}},
		{"UTF16LE", utf16le, map[string]any{"encoding": "utf-16"}, map[string]string{"1": "Əli Həsənov"}},
		{"UTF16BE", utf16be, map[string]any{"encoding": "utf-16"}, map[string]string{"2": "Иван Петров"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setupPull(t, "")
			srv := fileServer(t, []byte(tt.body), "")
			cfg := map[string]any{"url": srv.URL + "/students.csv", "id_column": "id"}
			for k, v := range tt.config {
				cfg[k] = v
			}
			id := b.pullIntegration(t, "csv", "data_import", cfg, "")
			_, err := b.sync(t, id)
			require.NoError(t, err)
			l := b.lastLog(t, id)
			require.Equal(t, "completed", l.Status)
			require.Zero(t, l.Failed)
			require.Equal(t, l.Processed, l.Created)
			for ext, name := range tt.want {
				require.Equal(t, name, b.payload(t, id, ext, "name"))
			}
			require.Contains(t, []string{"10-A", "10-B"}, b.payload(t, id, "1", "grade"))
		})
	}

	t.Run("MalformedRowsAreInvalidWithTheirLine", func(t *testing.T) {
		t.Parallel()
		b := setupPull(t, "")
		body := students + "4,Nigar Əliyeva\r\n,Orphan,9-C\r\n 5 ,Kamal Quliyev,9-C\r\n"
		srv := fileServer(t, []byte(body), "")
		id := b.pullIntegration(t, "csv", "data_import", map[string]any{"url": srv.URL, "id_column": "id", "rows_per_page": 2}, "")
		res, err := b.sync(t, id)
		require.NoError(t, err)
		require.Equal(t, 3, res.Pages)
		l := b.lastLog(t, id)
		require.Equal(t, []int{6, 4, 2}, []int{l.Processed, l.Created, l.Failed})
		sample := fmt.Sprint(l.Details["invalid_records_sample"])
		require.Contains(t, sample, `page 2, line 6: 2 fields, the header has 3: "4,Nigar Əliyeva"`)
		require.Contains(t, sample, `page 3, line 7: "id" is empty`)
		require.Equal(t, "Kamal Quliyev", b.payload(t, id, "5", "name"), "the id is trimmed")
	})

	t.Run("WrongEncodingFailsNamingTheLine", func(t *testing.T) {
		t.Parallel()
		b := setupPull(t, "")
		srv := fileServer(t, []byte(win1251), "")
		id := b.pullIntegration(t, "csv", "data_import", map[string]any{"url": srv.URL, "id_column": "id", "delimiter": ";"}, "")
		_, err := b.sync(t, id)
		requireFailed(t, b, id, err, "line 2: bytes that are not valid utf-8")
	})

	t.Run("UTF16WithoutBOM", func(t *testing.T) {
		t.Parallel()
		b := setupPull(t, "")
		srv := fileServer(t, []byte(students), "")
		id := b.pullIntegration(t, "csv", "data_import", map[string]any{"url": srv.URL, "id_column": "id", "encoding": "utf-16"}, "")
		_, err := b.sync(t, id)
		requireFailed(t, b, id, err, "line 1: utf-16 needs a byte order mark")
	})

	t.Run("NoIDColumn", func(t *testing.T) {
		t.Parallel()
		b := setupPull(t, "")
		srv := fileServer(t, []byte(students), "")
		id := b.pullIntegration(t, "csv", "data_import", map[string]any{"url": srv.URL, "id_column": "student_id"}, "")
		_, err := b.sync(t, id)
		requireFailed(t, b, id, err, `line 1: the header has no id_column "student_id"`)
	})

	t.Run("BrokenQuoteFailsNamingTheLine", func(t *testing.T) {
		t.Parallel()
		b := setupPull(t, "")
		srv := fileServer(t, []byte(students+"9,\"Unclosed,10-A\r\n"), "")
		id := b.pullIntegration(t, "csv", "data_import", map[string]any{"url": srv.URL, "id_column": "id"}, "")
		_, err := b.sync(t, id)
		requireFailed(t, b, id, err, "line 6: extraneous or missing \" in quoted-field")
	})

	t.Run("CredentialsStaySecret", func(t *testing.T) {
		t.Parallel()
		b := setupPull(t, "")
		srv := fileServer(t, []byte(students), "pw-SECRET-csv")
		good := b.pullIntegration(t, "csv", "data_import", map[string]any{"url": srv.URL, "id_column": "id"},
			`{"type": "basic", "username": "u", "password": "pw-SECRET-csv"}`)
		_, err := b.sync(t, good)
		require.NoError(t, err)
		require.Equal(t, 3, b.live(t, good))
		wrong := b.pullIntegration(t, "csv", "data_import", map[string]any{"url": srv.URL, "id_column": "id"},
			`{"type": "basic", "username": "u", "password": "pw-SECRET-wrong"}`)
		_, err = b.sync(t, wrong)
		requireFailed(t, b, wrong, err, "page 1: the provider answered 403 Forbidden")
		for _, secret := range []string{"pw-SECRET-csv", "pw-SECRET-wrong"} {
			require.NotContains(t, b.everything(t), secret)
		}
	})

	t.Run("RedirectToACDNCarriesNoCredentials", func(t *testing.T) {
		t.Parallel()
		b := setupPull(t, "")
		seen := make(chan string, 2)
		cdn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen <- r.Header.Get("Authorization")
			_, _ = w.Write([]byte(students))
		}))
		t.Cleanup(cdn.Close)
		origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, cdn.URL+"/students.csv", http.StatusFound)
		}))
		t.Cleanup(origin.Close)
		creds := `{"type": "bearer", "token": "tok-SECRET-cdn"}`

		id := b.pullIntegration(t, "csv", "data_import", map[string]any{"url": origin.URL, "id_column": "id"}, creds)
		_, err := b.sync(t, id)
		require.NoError(t, err)
		require.Equal(t, 3, b.live(t, id))
		require.Empty(t, <-seen, "the token stays with the integration's origin")

		allowed := b.pullIntegration(t, "csv", "data_import", map[string]any{"url": origin.URL, "id_column": "id",
			"allowed_origins": []string{cdn.URL}}, creds)
		_, err = b.sync(t, allowed)
		require.NoError(t, err)
		require.Equal(t, "Bearer tok-SECRET-cdn", <-seen, "an allowed origin receives it")
		require.NotContains(t, b.everything(t), "tok-SECRET-cdn")
	})

	t.Run("ServerDown", func(t *testing.T) {
		t.Parallel()
		b := setupPull(t, "")
		srv := fileServer(t, []byte(students), "")
		srv.Close()
		id := b.pullIntegration(t, "csv", "data_import", map[string]any{"url": srv.URL, "id_column": "id", "max_retries": 0}, "")
		_, err := b.sync(t, id)
		requireFailed(t, b, id, err, "connection refused")
	})

	t.Run("SlowDownloadTimesOutNamingTheLine", func(t *testing.T) {
		t.Parallel()
		b := setupPull(t, "")
		stop := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(students))
			w.(http.Flusher).Flush()
			select { // then stalls, as a dying server would
			case <-r.Context().Done():
			case <-stop:
			}
		}))
		t.Cleanup(srv.Close)
		t.Cleanup(func() { close(stop) })
		id := b.pullIntegration(t, "csv", "data_import", map[string]any{"url": srv.URL, "id_column": "id", "timeout_seconds": 1}, "")
		_, err := b.sync(t, id)
		requireFailed(t, b, id, err, "after the row on line 4: reading the file: context deadline exceeded: the download took longer than timeout_seconds (1s)")
	})

	t.Run("FileUnderImportDir", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "school"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "school", "students.csv"), []byte(students), 0o600))
		outside := filepath.Join(t.TempDir(), "secret.csv")
		require.NoError(t, os.WriteFile(outside, []byte("id\n1\n"), 0o600))
		require.NoError(t, os.Symlink(outside, filepath.Join(dir, "link.csv")))
		b := setupPull(t, dir)

		id := b.pullIntegration(t, "csv", "data_import", map[string]any{"file": "school/students.csv", "id_column": "id"}, "")
		_, err := b.sync(t, id)
		require.NoError(t, err)
		require.Equal(t, 3, b.live(t, id))

		for file, want := range map[string]string{
			"../" + filepath.Base(filepath.Dir(outside)) + "/secret.csv": `must be a path inside ATIS_IMPORT_DIR`,
			outside:      `must be a path inside ATIS_IMPORT_DIR`,
			"link.csv":   `file "link.csv" under ATIS_IMPORT_DIR: path escapes from parent`,
			"absent.csv": `file "absent.csv" under ATIS_IMPORT_DIR: no such file or directory`,
		} {
			id := b.pullIntegration(t, "csv", "data_import", map[string]any{"file": file, "id_column": "id"}, "")
			_, err := b.sync(t, id)
			requireFailed(t, b, id, err, want)
		}
	})

	t.Run("NoImportDirNoFiles", func(t *testing.T) {
		t.Parallel()
		b := setupPull(t, "")
		id := b.pullIntegration(t, "csv", "data_import", map[string]any{"file": "students.csv", "id_column": "id"}, "")
		_, err := b.sync(t, id)
		requireFailed(t, b, id, err, "needs the daemon's ATIS_IMPORT_DIR, which is not set")
	})
}

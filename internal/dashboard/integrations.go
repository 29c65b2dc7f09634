package dashboard

import (
	"net/http"

	"github.com/atis-edu/atis-scheduler/internal/admin"
)

// syncsShown is how many recent syncs each integration shows.
const syncsShown = 5

// integrations lists every integration (never its credentials or config)
// with its latest syncs, failing ones first.
func (d *Dashboard) integrations(w http.ResponseWriter, r *http.Request) {
	list, err := admin.Integrations(r.Context(), d.cfg.Pool, 0, syncsShown, d.cfg.Now())
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.render(w, r, "integrations", "Integrations", list)
}

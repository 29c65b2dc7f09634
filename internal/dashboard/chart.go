package dashboard

import (
	"strconv"
	"time"
)

// Chart geometry, in SVG user units.
const (
	chartBars   = 24
	chartBarW   = 22
	chartGap    = 4
	chartHeight = 120
	chartTop    = 14
)

// chart is the last day's attempts as 24 stacked hourly bars, drawn by the
// template as SVG: completed, failed, cancelled; anything else (queued,
// processing) as "other".
type chart struct {
	Width, Height int
	Bars          []bar
	Totals        map[string]int64
	Max           int64
}

// AxisY is where the hour labels go.
func (c chart) AxisY() int { return chartTop + chartHeight + 13 }

type bar struct {
	Label string // the hour, in the dashboard's zone
	X     int
	Segs  []seg
	Total int64
}

type seg struct {
	Class   string
	X, Y, H int
	N       int64
}

// chartOrder is the stacking order, bottom up.
var chartOrder = []string{"completed", "failed", "cancelled", "other"}

func newChart(from time.Time, loc *time.Location, counts map[int64]map[string]int64) chart {
	c := chart{Width: chartBars * (chartBarW + chartGap), Height: chartHeight + chartTop + 16, Totals: map[string]int64{}}
	perHour := make([]map[string]int64, chartBars)
	for i := range chartBars {
		h := map[string]int64{}
		for status, n := range counts[from.Add(time.Duration(i)*time.Hour).Unix()] {
			switch status {
			case "completed", "failed", "cancelled":
				h[status] += n
			default:
				h["other"] += n
			}
		}
		perHour[i] = h
		var total int64
		for _, n := range h {
			total += n
		}
		c.Max = max(c.Max, total)
	}
	for i, h := range perHour {
		b := bar{Label: strconv.Itoa(from.Add(time.Duration(i) * time.Hour).In(loc).Hour()), X: i * (chartBarW + chartGap)}
		y := chartTop + chartHeight
		for _, status := range chartOrder {
			n := h[status]
			c.Totals[status] += n
			b.Total += n
			if n == 0 {
				continue
			}
			height := max(1, int(n*chartHeight/max(c.Max, 1)))
			y -= height
			b.Segs = append(b.Segs, seg{Class: status, X: b.X, Y: y, H: height, N: n})
		}
		c.Bars = append(c.Bars, b)
	}
	return c
}

package marketdata

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/market"
)

// recordedStarts reads the bar start times straight out of a recorded body: Alpaca's "t" (RFC
// 3339, in a list or a map of lists by symbol) or Massive's results[].t (epoch milliseconds).
func recordedStarts(t *testing.T, name string) []time.Time {
	t.Helper()
	var body struct {
		Bars    json.RawMessage `json:"bars"`
		Results []struct {
			T int64 `json:"t"`
		} `json:"results"`
	}
	require.NoError(t, json.Unmarshal(fixture(t, name), &body))
	var out []time.Time
	for _, r := range body.Results {
		out = append(out, time.UnixMilli(r.T).UTC())
	}
	type bar struct {
		T time.Time `json:"t"`
	}
	var list []bar
	var bySymbol map[string][]bar
	switch {
	case json.Unmarshal(body.Bars, &list) == nil:
	case json.Unmarshal(body.Bars, &bySymbol) == nil:
		for _, bs := range bySymbol {
			list = append(list, bs...)
		}
	}
	for _, b := range list {
		out = append(out, b.T.UTC())
	}
	require.NotEmpty(t, out, name)
	return out
}

// TestRecordedBarsLieOnTheGrid: every bar of the recorded Alpaca and Massive answers starts where
// the provider's grid (market.AlpacaGrid, market.MassiveGrid) says one can, on the NYSE calendar;
// the Massive hourly bars include pre-market and after-hours, which regular hours would not hold.
func TestRecordedBarsLieOnTheGrid(t *testing.T) {
	t.Parallel()
	cal := market.NYSE()
	tests := []struct {
		file string
		grid market.Grid
		tf   market.Timeframe
	}{
		{"massive/aggs-GME-60-minute-2021-12-01-2021-12-02-desc.json", market.MassiveGrid(), market.H1},
		{"massive/aggs-GME-1-day-2021-12-01-2021-12-02-desc.json", market.MassiveGrid(), market.D1},
		{"massive/aggs-AAPL-1-day-2023-01-01-2023-01-10-asc.json", market.MassiveGrid(), market.D1},
		{"massive/aggs-AAPL-1-day-2005-04-01-2005-04-04.json", market.MassiveGrid(), market.D1},
		{"alpaca/bars-multi-AMZN-15Min-reshaped-final.json", market.AlpacaGrid(), market.M15},
		{"alpaca/bars-single-AMZN-15Min-sip-split-final.json", market.AlpacaGrid(), market.M15},
		{"alpaca/bars-multi-AAPL-NIO-1Day-final.json", market.AlpacaGrid(), market.D1},
		{"alpaca/bars-multi-AAPL-TSLA-1Day-final.json", market.AlpacaGrid(), market.D1},
		{"alpaca/bars-multi-META-1Day-asof-page1.json", market.AlpacaGrid(), market.D1},
		{"alpaca/bars-multi-GE-1Day-dividend-spinoff-page1.json", market.AlpacaGrid(), market.D1},
		{"alpaca/bars-single-TSLA-1Day-desc-limit3-page1.json", market.AlpacaGrid(), market.D1},
		{"alpaca/bars-single-AAPL-1Day-limit2-page1.json", market.AlpacaGrid(), market.D1},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			starts := recordedStarts(t, tt.file)
			first, last := slices.MinFunc(starts, time.Time.Compare), slices.MaxFunc(starts, time.Time.Compare)
			grid := tt.grid.Starts(cal, tt.tf, first, last.Add(time.Nanosecond))
			for _, s := range starts {
				require.Contains(t, grid, s, "%s bar at %s (%s New York) is off the grid", tt.tf, s, s.In(cal.Location()))
			}
		})
	}
	gme := recordedStarts(t, "massive/aggs-GME-60-minute-2021-12-01-2021-12-02-desc.json")
	regular := market.Grid{Provider: "massive", Hours: market.RegularHours}.Starts(cal, market.H1, utc("2021-12-01T05:00:00Z"), utc("2021-12-03T05:00:00Z"))
	outside := 0
	for _, s := range gme {
		if !slices.Contains(regular, s) {
			outside++
		}
	}
	require.Positive(t, outside, "the recorded hourly bars reach into extended hours")
}

package market

import "time"

// Timeframe is a canonical bar size token, as stored in job_definitions and ohlc_bars_v2.
type Timeframe string

// The timeframes every provider serves.
const (
	M15 Timeframe = "m15"
	H1  Timeframe = "h1"
	H4  Timeframe = "h4"
	D1  Timeframe = "d1"
	W1  Timeframe = "w1"
)

// Timeframes lists the supported timeframes, shortest first.
func Timeframes() []Timeframe { return []Timeframe{M15, H1, H4, D1, W1} }

// DefaultTimeframes are the timeframes a sync request that names none tracks.
func DefaultTimeframes() []Timeframe { return []Timeframe{M15, H1, H4} }

// Duration is the nominal length of one bar (d1 24h, w1 7 days). Daily and weekly bars of
// stocks start at midnight New York time, so their UTC length varies across DST changes.
func (tf Timeframe) Duration() time.Duration {
	switch tf {
	case M15:
		return 15 * time.Minute
	case H1:
		return time.Hour
	case H4:
		return 4 * time.Hour
	case D1:
		return 24 * time.Hour
	case W1:
		return 7 * 24 * time.Hour
	}
	return 0
}

// Valid reports whether tf is one of Timeframes.
func (tf Timeframe) Valid() bool { return tf.Duration() > 0 }

// Intraday reports whether a bar of tf is shorter than a session day (m15, h1, h4): such bars
// fall inside a session's hours, longer ones are stamped at its date.
func (tf Timeframe) Intraday() bool { return tf.Valid() && tf.Duration() < 24*time.Hour }

// Names returns the tokens of tfs, in order ("m15", "h1", …).
func Names(tfs []Timeframe) []string {
	out := make([]string, len(tfs))
	for i, tf := range tfs {
		out[i] = string(tf)
	}
	return out
}

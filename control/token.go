package control

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
)

// pageToken is what a page token carries: the list that issued it, a digest of that request's
// filters, and the sort key of the last row returned. The caller sees base64 of its JSON and
// must treat it as opaque; it is not signed, since every key it holds is one the caller could
// filter on anyway.
type pageToken struct {
	Version int    `json:"v"`
	Kind    string `json:"k"` // tokenDefinitions or tokenRuns
	Filters string `json:"f"` // filterDigest of the request
	// Definitions: symbol, timeframe sort order, job type.
	Symbol  string `json:"s,omitempty"`
	Sort    int16  `json:"o,omitempty"`
	JobType string `json:"j,omitempty"`
	// Runs: created_at and slice_from in Unix microseconds, id.
	Created   int64  `json:"c,omitempty"`
	SliceFrom int64  `json:"t,omitempty"`
	ID        string `json:"i,omitempty"`
}

const (
	tokenVersion     = 1
	tokenDefinitions = "definitions"
	tokenRuns        = "runs"
)

// filterDigest condenses a request's filters, so a token is honoured only with the filters it
// was issued for: with others, its position would skip or repeat rows.
func filterDigest(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:8])
}

func (t pageToken) encode() string {
	b, _ := json.Marshal(t) // cannot fail for this type
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodePageToken reads s as a token of kind for the filters of digest; "" is the first page
// (nil, nil).
func decodePageToken(s, kind, digest string) (*pageToken, error) {
	if s == "" {
		return nil, nil
	}
	malformed := invalid("page_token",
		"page_token is not one this service issued: pass next_page_token from the previous response unchanged, or leave it empty for the first page")
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, malformed
	}
	var t pageToken
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil || t.Version != tokenVersion || t.Kind != kind {
		return nil, malformed
	}
	if kind == tokenRuns && !isUUID(t.ID) {
		return nil, malformed
	}
	if t.Filters != digest {
		return nil, invalid("page_token",
			"page_token was issued for other filters: repeat the request with the filters that returned it, or leave page_token empty to start again")
	}
	return &t, nil
}

func isUUID(s string) bool {
	_, err := parseUUID("id", s)
	return err == nil && s == strings.ToLower(s)
}

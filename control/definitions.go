package control

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/symbolsync/backfill/replicator"
)

var (
	//go:embed sql/list_definitions.sql
	listDefinitionsSQL string
	//go:embed sql/update_definition.sql
	updateDefinitionSQL string
)

// Definition is a row of public.job_definitions. Pointers are nil for SQL NULL.
type Definition struct {
	ID, Symbol, Timeframe, JobType string
	WindowDays, Priority           int32
	Enabled                        bool
	Origin                         string // tracking, seed or manual
	DisabledReason                 string // "" when enabled; "disabled by operator" after UpdateJobDefinition
	RequestedAt                    time.Time
	FirstBarsAt, CoveredAt         *time.Time
	CreatedAt, UpdatedAt           time.Time
}

// DefinitionFilter selects job definitions; zero fields select everything.
type DefinitionFilter struct {
	Symbol    string // ticker; trimmed and upper-cased
	Timeframe string // m15, h1, h4, d1 or w1
	Enabled   *bool
	PageSize  int    // 1–MaxPageSize; 0 means DefaultPageSize
	PageToken string // NextPageToken of the previous page; "" for the first
}

// DefinitionPage is one page of job definitions.
type DefinitionPage struct {
	Definitions   []Definition
	NextPageToken string // "" on the last page
}

// Definitions lists job definitions by symbol, timeframe and job type.
func (s *Service) Definitions(ctx context.Context, f DefinitionFilter) (DefinitionPage, error) {
	sym, err := normalizeSymbol("symbol", f.Symbol)
	if err != nil {
		return DefinitionPage{}, err
	}
	if err := checkTimeframe("timeframe", f.Timeframe); err != nil {
		return DefinitionPage{}, err
	}
	size, err := pageSize(f.PageSize)
	if err != nil {
		return DefinitionPage{}, err
	}
	enabled := ""
	if f.Enabled != nil {
		enabled = strconv.FormatBool(*f.Enabled)
	}
	digest := filterDigest(sym, f.Timeframe, enabled)
	after, err := decodePageToken(f.PageToken, tokenDefinitions, digest)
	if err != nil {
		return DefinitionPage{}, err
	}
	var afterSymbol, afterJobType *string
	var afterSort *int16
	if after != nil {
		afterSymbol, afterSort, afterJobType = &after.Symbol, &after.Sort, &after.JobType
	}
	rows, err := s.pool.Query(ctx, listDefinitionsSQL, nullString(sym), nullString(f.Timeframe), f.Enabled,
		afterSymbol, afterSort, afterJobType, size+1)
	if err != nil {
		return DefinitionPage{}, fmt.Errorf("list job definitions: %w", err)
	}
	var sorts []int16
	defs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Definition, error) {
		var d Definition
		var sort int16
		err := row.Scan(&d.ID, &d.Symbol, &d.Timeframe, &d.JobType, &d.WindowDays, &d.Priority, &d.Enabled, &d.Origin,
			&d.DisabledReason, &d.RequestedAt, &d.FirstBarsAt, &d.CoveredAt, &d.CreatedAt, &d.UpdatedAt, &sort)
		sorts = append(sorts, sort)
		return d, err
	})
	if err != nil {
		return DefinitionPage{}, fmt.Errorf("list job definitions: %w", err)
	}
	page := DefinitionPage{Definitions: defs}
	if len(defs) > size {
		page.Definitions = defs[:size]
		last := defs[size-1]
		page.NextPageToken = pageToken{
			Version: tokenVersion, Kind: tokenDefinitions, Filters: digest,
			Symbol: last.Symbol, Sort: sorts[size-1], JobType: last.JobType,
		}.encode()
	}
	return page, nil
}

// DefinitionUpdate changes a definition; nil fields stay as they are.
type DefinitionUpdate struct {
	ID         string
	WindowDays *int32 // MinWindowDays–MaxWindowDays
	Priority   *int32 // MinPriority–MaxPriority; higher runs first
	Enabled    *bool
}

// UpdateDefinition applies u and returns the definition as it is afterwards. A change wakes the
// planners of every process (see the package comment); a request whose values are the current
// ones changes and wakes nothing.
func (s *Service) UpdateDefinition(ctx context.Context, u DefinitionUpdate) (Definition, error) {
	id, err := parseUUID("id", u.ID)
	if err != nil {
		return Definition{}, err
	}
	if u.WindowDays == nil && u.Priority == nil && u.Enabled == nil {
		return Definition{}, invalid("", "nothing to change: set window_days, priority or enabled")
	}
	if w := u.WindowDays; w != nil && (*w < MinWindowDays || *w > MaxWindowDays) {
		return Definition{}, invalid("window_days", "window_days must be between %d and %d days, got %d", MinWindowDays, MaxWindowDays, *w)
	}
	if p := u.Priority; p != nil && (*p < MinPriority || *p > MaxPriority) {
		return Definition{}, invalid("priority",
			"priority must be between %d and %d (higher runs first; tracking uses watchlist 300, chart view 200, search 100), got %d",
			MinPriority, MaxPriority, *p)
	}
	var d Definition
	var changed bool
	var notified *string
	err = s.pool.QueryRow(ctx, updateDefinitionSQL, id, u.WindowDays, u.Priority, u.Enabled,
		replicator.NotifyChannel, wakePayload("update_job_definition"), at(s.now())).
		Scan(&d.ID, &d.Symbol, &d.Timeframe, &d.JobType, &d.WindowDays, &d.Priority, &d.Enabled, &d.Origin,
			&d.DisabledReason, &d.RequestedAt, &d.FirstBarsAt, &d.CoveredAt, &d.CreatedAt, &d.UpdatedAt, &changed, &notified)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return Definition{}, fmt.Errorf("job definition %s: %w", id, ErrNotFound)
	case err != nil:
		return Definition{}, fmt.Errorf("update job definition %s: %w", id, err)
	}
	return d, nil
}

// wakePayload is the payload of a wake-up on replicator.NotifyChannel. The planners ignore it;
// it tells someone listening with psql who woke them.
func wakePayload(reason string) string {
	b, _ := json.Marshal(map[string]string{"kind": "control", "reason": reason}) // cannot fail
	return string(b)
}

// nullString maps "" to SQL NULL.
func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

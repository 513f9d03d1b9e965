package control

import (
	"context"
	_ "embed"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/symbolsync/backfill/completeness"
)

//go:embed sql/verify_definitions.sql
var verifyDefinitionsSQL string

// MaxVerifySymbols bounds the symbols one VerifyCoverage request names.
const MaxVerifySymbols = 1000

// Verification is what VerifyCoverage found.
type Verification struct {
	// Provider is whose bars were checked.
	Provider string
	// CheckedAt is the check's instant.
	CheckedAt time.Time
	// Results are the definitions checked, ordered by symbol and timeframe.
	Results []completeness.Result
	// Holes counts the holes over all results; RepairsQueued the repair runs queued.
	Holes, RepairsQueued int
}

// VerifyCoverage checks the completeness of the enabled definitions of symbols (all when none)
// and timeframe ("" for all) afresh, records what it found, and with repair queues repair runs
// for their holes, given-up ones included. An unknown symbol is an *InvalidError. Without a
// checker (Config.Checker nil: this process runs no provider) it is refused with a *StateError.
func (s *Service) VerifyCoverage(ctx context.Context, symbols []string, timeframe string, repair bool) (Verification, error) {
	if len(symbols) > MaxVerifySymbols {
		return Verification{}, invalid("symbols", "at most %d symbols per request, got %d", MaxVerifySymbols, len(symbols))
	}
	var syms []string
	for i, raw := range symbols {
		sym, err := normalizeSymbol(fmt.Sprintf("symbols[%d]", i), raw)
		if err != nil {
			return Verification{}, err
		}
		if sym == "" {
			return Verification{}, invalid("symbols", "symbols[%d] is empty", i)
		}
		syms = append(syms, sym)
	}
	if err := checkTimeframe("timeframe", timeframe); err != nil {
		return Verification{}, err
	}
	if s.cfg.Checker == nil {
		return Verification{}, &StateError{Message: "this process runs no orchestrator (--provider none), so it checks no completeness: call a replica that does"}
	}
	var symArg, tfArg any
	if syms != nil {
		symArg = syms
	}
	if timeframe != "" {
		tfArg = timeframe
	}
	rows, err := s.pool.Query(ctx, verifyDefinitionsSQL, symArg, tfArg)
	if err != nil {
		return Verification{}, fmt.Errorf("verify coverage: %w", err)
	}
	var ids, unknown []string
	var id, sym, missing *string
	if _, err := pgx.ForEachRow(rows, []any{&id, &sym, &missing}, func() error {
		if missing != nil {
			unknown = append(unknown, *missing)
		} else {
			ids = append(ids, *id)
		}
		return nil
	}); err != nil {
		return Verification{}, fmt.Errorf("verify coverage: %w", err)
	}
	if len(unknown) > 0 {
		return Verification{}, invalid("symbols", "unknown symbol(s): %s", strings.Join(unknown, ", "))
	}
	v := Verification{Provider: s.cfg.Checker.Grid().Provider}
	if len(ids) == 0 {
		v.CheckedAt = s.now()
		return v, nil
	}
	results, err := s.cfg.Checker.Check(ctx, ids)
	if err != nil {
		return Verification{}, fmt.Errorf("verify coverage: %w", err)
	}
	if repair {
		if v.RepairsQueued, err = s.cfg.Checker.Repair(ctx, results, true); err != nil {
			return Verification{}, fmt.Errorf("verify coverage: %w", err)
		}
		// The holes now say repairing: read them again so the answer says what happens next.
		if results, err = s.cfg.Checker.Holes(ctx, results); err != nil {
			return Verification{}, fmt.Errorf("verify coverage: %w", err)
		}
	}
	// Check answers in its own order; the answer is by symbol and timeframe, as ids are. A
	// definition disabled meanwhile is not checked and not listed.
	byID := make(map[string]completeness.Result, len(results))
	for _, r := range results {
		byID[r.DefID] = r
	}
	for _, id := range ids {
		if r, ok := byID[id]; ok {
			v.Results = append(v.Results, r)
			v.Holes += len(r.Holes)
			v.CheckedAt = r.CheckedAt
		}
	}
	return v, nil
}

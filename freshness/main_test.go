package freshness

import (
	"testing"

	"github.com/symbolsync/backfill/supabase/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

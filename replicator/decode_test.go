package replicator

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/symbolsync/backfill/supabase/pgtest"
)

const (
	symA = "11111111-1111-4111-8111-111111111111"
	symB = "22222222-2222-4222-8222-222222222222"
)

func tuple(cols ...*pglogrepl.TupleDataColumn) *pglogrepl.TupleData {
	return &pglogrepl.TupleData{ColumnNum: uint16(len(cols)), Columns: cols}
}

func text(s string) *pglogrepl.TupleDataColumn {
	return &pglogrepl.TupleDataColumn{DataType: pglogrepl.TupleDataTypeText, Length: uint32(len(s)), Data: []byte(s)}
}

func null() *pglogrepl.TupleDataColumn {
	return &pglogrepl.TupleDataColumn{DataType: pglogrepl.TupleDataTypeNull}
}

// trackingRow is (id, user_id, symbol_id) in the order of the Relation below.
func trackingRow(symbol *pglogrepl.TupleDataColumn) *pglogrepl.TupleData {
	return tuple(text("33333333-3333-4333-8333-333333333333"), null(), symbol)
}

func relationMsg(id uint32, schema, table string, identity uint8) *pglogrepl.RelationMessage {
	return &pglogrepl.RelationMessage{
		RelationID: id, Namespace: schema, RelationName: table, ReplicaIdentity: identity, ColumnNum: 3,
		Columns: []*pglogrepl.RelationMessageColumn{{Name: "id"}, {Name: "user_id"}, {Name: "symbol_id"}},
	}
}

func TestDecoder(t *testing.T) {
	t.Parallel()
	const tracked, other, keyOnly = 1, 2, 3
	newDec := func() *decoder {
		d := newDecoder()
		d.relation(relationMsg(tracked, "public", "user_symbol_tracking", 'f'))
		d.relation(relationMsg(other, "public", "symbols", 'd'))
		d.relation(relationMsg(keyOnly, "public", "user_symbol_tracking", 'd'))
		return d
	}
	for _, tc := range []struct {
		name    string
		msg     pglogrepl.Message
		want    change
		ignored bool
		err     string
	}{
		{name: "insert", msg: &pglogrepl.InsertMessage{RelationID: tracked, Tuple: trackingRow(text(symA))},
			want: change{op: opInsert, symbols: []string{symA}}},
		{name: "update in place", msg: &pglogrepl.UpdateMessage{RelationID: tracked, OldTupleType: 'O',
			OldTuple: trackingRow(text(symA)), NewTuple: trackingRow(text(symA))},
			want: change{op: opUpdate, symbols: []string{symA}}},
		{name: "update moving a row to another symbol", msg: &pglogrepl.UpdateMessage{RelationID: tracked, OldTupleType: 'O',
			OldTuple: trackingRow(text(symA)), NewTuple: trackingRow(text(symB))},
			want: change{op: opUpdate, symbols: []string{symB, symA}}},
		{name: "update without old row (identity not FULL)", msg: &pglogrepl.UpdateMessage{RelationID: keyOnly,
			NewTuple: trackingRow(text(symB))},
			want: change{op: opUpdate, symbols: []string{symB}, all: true, degraded: true}},
		{name: "delete", msg: &pglogrepl.DeleteMessage{RelationID: tracked, OldTupleType: 'O', OldTuple: trackingRow(text(symA))},
			want: change{op: opDelete, symbols: []string{symA}}},
		{name: "delete with key only", msg: &pglogrepl.DeleteMessage{RelationID: keyOnly, OldTupleType: 'K', OldTuple: trackingRow(null())},
			want: change{op: opDelete, all: true, degraded: true}},
		{name: "truncate", msg: &pglogrepl.TruncateMessage{RelationNum: 2, RelationIDs: []uint32{other, tracked}},
			want: change{op: opTruncate, all: true}},
		{name: "truncate of an unknown relation is taken as ours", msg: &pglogrepl.TruncateMessage{RelationNum: 1, RelationIDs: []uint32{99}},
			want: change{op: opTruncate, all: true}},
		{name: "truncate of another table", msg: &pglogrepl.TruncateMessage{RelationNum: 1, RelationIDs: []uint32{other}}, ignored: true},
		{name: "insert into another table", msg: &pglogrepl.InsertMessage{RelationID: other, Tuple: trackingRow(text(symA))}, ignored: true},
		{name: "change before its relation", msg: &pglogrepl.InsertMessage{RelationID: 42, Tuple: trackingRow(text(symA))},
			err: "before its Relation message"},
		{name: "insert without symbol_id", msg: &pglogrepl.InsertMessage{RelationID: tracked, Tuple: trackingRow(null())},
			err: "without symbol_id"},
		{name: "binary value", msg: &pglogrepl.InsertMessage{RelationID: tracked, Tuple: trackingRow(
			&pglogrepl.TupleDataColumn{DataType: pglogrepl.TupleDataTypeBinary, Data: []byte{1}})}, err: "unexpected format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, err := newDec().change(tc.msg)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, !tc.ignored, ok)
			if !tc.ignored {
				require.Equal(t, tc.want, got)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	maxWait := 5 * time.Second
	for n := range 40 {
		want := maxWait
		if n < 6 {
			want = min(100*time.Millisecond<<n, maxWait)
		}
		for range 20 {
			d := backoff(n, maxWait)
			require.GreaterOrEqual(t, d, want/2, "attempt %d", n)
			require.LessOrEqual(t, d, want, "attempt %d", n)
		}
	}
	require.Zero(t, backoff(3, 0))
}

// TestInvisibleUpstreamTransactions checks sql/invisible.sql: an xid that has not committed yet
// is not visible, and is once it has.
func TestInvisibleUpstreamTransactions(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := pgtest.URL(t)
	writer, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer writer.Close(context.Background())
	reader, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer reader.Close(context.Background())

	tx, err := writer.Begin(ctx)
	require.NoError(t, err)
	var xid8 int64
	require.NoError(t, tx.QueryRow(ctx, "SELECT pg_current_xact_id()::text::bigint").Scan(&xid8))
	xid := int64(uint32(xid8)) // as pgoutput's Begin carries it

	invisible := func(ids ...int64) int64 {
		var n int64
		require.NoError(t, reader.QueryRow(ctx, invisibleSQL, ids).Scan(&n))
		return n
	}
	require.Equal(t, int64(1), invisible(xid), "in progress")
	require.Equal(t, int64(0), invisible(3, 100), "long committed")
	require.Equal(t, int64(1), invisible(xid+1000), "in the future")
	require.NoError(t, tx.Commit(ctx))
	require.Equal(t, int64(0), invisible(xid), "committed")
	require.Equal(t, int64(0), invisible())
}

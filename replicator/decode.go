package replicator

import (
	"fmt"

	"github.com/jackc/pglogrepl"
)

// The tracked table and the column that says which symbol a row is about.
const (
	trackingSchema = "public"
	trackingTable  = "user_symbol_tracking"
	symbolColumn   = "symbol_id"
)

// op is a row operation of the tracked table.
type op int

const (
	opInsert op = iota
	opUpdate
	opDelete
	opTruncate
	numOps
)

func (o op) String() string {
	switch o {
	case opInsert:
		return "insert"
	case opUpdate:
		return "update"
	case opDelete:
		return "delete"
	case opTruncate:
		return "truncate"
	}
	return fmt.Sprintf("op(%d)", int(o))
}

// change is what one row change means for the rule: which symbols must be re-derived.
type change struct {
	op op
	// symbols are the symbol ids (uuid text) of the new and old row; one or two.
	symbols []string
	// all means every symbol must be re-derived: a TRUNCATE, or an UPDATE/DELETE whose old row
	// does not carry symbol_id (the table's REPLICA IDENTITY is not FULL any more).
	all bool
	// degraded is set with all when it comes from a missing old row rather than a TRUNCATE.
	degraded bool
}

// relation is what the decoder keeps of a Relation message.
type relation struct {
	tracked      bool // public.user_symbol_tracking
	symbolCol    int  // index of symbol_id, -1 when absent
	identityFull bool
}

// decoder turns pgoutput messages into changes. It keeps the relations of one replication
// session: pgoutput sends a Relation message before a relation's first change in a session and
// again after the table's schema changes, so a new session needs a new decoder.
type decoder struct {
	relations map[uint32]relation
}

func newDecoder() *decoder { return &decoder{relations: map[uint32]relation{}} }

// relation records a Relation message.
func (d *decoder) relation(m *pglogrepl.RelationMessage) {
	rel := relation{
		tracked:      m.Namespace == trackingSchema && m.RelationName == trackingTable,
		symbolCol:    -1,
		identityFull: m.ReplicaIdentity == 'f',
	}
	for i, c := range m.Columns {
		if c.Name == symbolColumn {
			rel.symbolCol = i
		}
	}
	d.relations[m.RelationID] = rel
}

// change decodes a row message. ok is false for a change of another table (a publication may
// carry more tables than ours; their changes are none of our business).
func (d *decoder) change(msg pglogrepl.Message) (c change, ok bool, err error) {
	switch m := msg.(type) {
	case *pglogrepl.InsertMessage:
		rel, err := d.tracked(m.RelationID)
		if err != nil || !rel.tracked {
			return change{}, false, err
		}
		c = change{op: opInsert}
		sym, err := rel.symbol(m.Tuple, "new")
		if err != nil {
			return change{}, false, err
		}
		if sym == "" {
			return change{}, false, fmt.Errorf("insert into %s.%s without %s", trackingSchema, trackingTable, symbolColumn)
		}
		c.symbols = []string{sym}
		return c, true, nil

	case *pglogrepl.UpdateMessage:
		rel, err := d.tracked(m.RelationID)
		if err != nil || !rel.tracked {
			return change{}, false, err
		}
		c = change{op: opUpdate}
		sym, err := rel.symbol(m.NewTuple, "new")
		if err != nil {
			return change{}, false, err
		}
		if sym == "" {
			return change{}, false, fmt.Errorf("update of %s.%s without %s in the new row", trackingSchema, trackingTable, symbolColumn)
		}
		c.symbols = []string{sym}
		// Without REPLICA IDENTITY FULL an UPDATE carries no old row (or only its key), so a
		// row moved to another symbol would leave the old symbol's definitions behind.
		old, err := rel.symbol(m.OldTuple, "old")
		if err != nil {
			return change{}, false, err
		}
		switch {
		case old == "":
			c.all, c.degraded = true, true
		case old != sym:
			c.symbols = append(c.symbols, old)
		}
		return c, true, nil

	case *pglogrepl.DeleteMessage:
		rel, err := d.tracked(m.RelationID)
		if err != nil || !rel.tracked {
			return change{}, false, err
		}
		c = change{op: opDelete}
		old, err := rel.symbol(m.OldTuple, "old")
		if err != nil {
			return change{}, false, err
		}
		if old == "" {
			c.all, c.degraded = true, true
		} else {
			c.symbols = []string{old}
		}
		return c, true, nil

	case *pglogrepl.TruncateMessage:
		for _, id := range m.RelationIDs {
			rel, known := d.relations[id]
			// pgoutput sends the Relation of every truncated table first; an unknown one is
			// treated as ours, the safe side.
			if !known || rel.tracked {
				return change{op: opTruncate, all: true}, true, nil
			}
		}
		return change{}, false, nil
	}
	return change{}, false, fmt.Errorf("decode change: unexpected message %T", msg)
}

func (d *decoder) tracked(id uint32) (relation, error) {
	rel, ok := d.relations[id]
	if !ok {
		return relation{}, fmt.Errorf("change of relation %d before its Relation message", id)
	}
	return rel, nil
}

// symbol returns the symbol_id of a tuple as text, or "" when the tuple or the value is absent.
func (rel relation) symbol(t *pglogrepl.TupleData, which string) (string, error) {
	if t == nil || rel.symbolCol < 0 || rel.symbolCol >= len(t.Columns) {
		return "", nil
	}
	col := t.Columns[rel.symbolCol]
	switch col.DataType {
	case pglogrepl.TupleDataTypeText:
		return string(col.Data), nil
	case pglogrepl.TupleDataTypeNull, pglogrepl.TupleDataTypeToast:
		return "", nil
	}
	return "", fmt.Errorf("%s row: %s in unexpected format %q", which, symbolColumn, col.DataType)
}

package replicator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// Batching of consecutive upstream transactions into one apply. A commit is applied as soon as
// nothing more arrives within batchWait, so at low rates every transaction is applied on its
// own at once; under load, transactions that queued up meanwhile are applied together, bounded
// in age, count and symbols.
const (
	batchWait       = time.Millisecond
	maxBatchAge     = 20 * time.Millisecond
	maxBatchTxns    = 1000
	slotCreateWait  = 5 * time.Minute // CREATE_REPLICATION_SLOT waits for running transactions
	closeConnection = 2 * time.Second
	// applyTimeout bounds one apply while streaming (status updates keep going meanwhile): long
	// enough for a TRUNCATE of a big table, short enough that a hung connection is replaced.
	applyTimeout = 2 * time.Minute
)

// PostgreSQL error codes the session tells apart.
const (
	codeObjectInUse     = "55006" // replication slot "…" is active for PID n
	codeUndefinedObject = "42704" // replication slot "…" does not exist
	codeDuplicateObject = "42710" // replication slot "…" already exists
)

type sessionResult struct {
	reconciled bool // a full reconcile ran
	streamed   bool // START_REPLICATION succeeded: this process was the leader
}

// slotInfo is a row of pg_replication_slots.
type slotInfo struct {
	exists    bool
	database  string
	plugin    string
	slotType  string
	activePID int32
	walStatus string
	confirmed pglogrepl.LSN
	currentDB string
}

func (r *Replicator) inspectSlot(ctx context.Context) (slotInfo, error) {
	var (
		database, plugin, walStatus, confirmed *string
		slotType, currentDB                    string
		pid                                    *int32
	)
	err := r.pool.QueryRow(ctx, slotSQL, r.cfg.SlotName).Scan(&database, &plugin, &slotType, &pid, &walStatus, &confirmed, &currentDB)
	if errors.Is(err, pgx.ErrNoRows) {
		return slotInfo{}, nil
	}
	if err != nil {
		return slotInfo{}, fmt.Errorf("inspect replication slot %q: %w", r.cfg.SlotName, err)
	}
	info := slotInfo{exists: true, slotType: slotType, currentDB: currentDB}
	if database != nil {
		info.database = *database
	}
	if plugin != nil {
		info.plugin = *plugin
	}
	if pid != nil {
		info.activePID = *pid
	}
	if walStatus != nil {
		info.walStatus = *walStatus
	}
	if info.confirmed, err = parseLSN(confirmed); err != nil {
		return slotInfo{}, err
	}
	return info, nil
}

// readApplied returns the recorded applied LSN of the slot, and whether it is ahead of the
// server's WAL (not to be trusted).
func (r *Replicator) readApplied(ctx context.Context) (lsn pglogrepl.LSN, ahead bool, err error) {
	var s string
	err = r.pool.QueryRow(ctx, progressSQL, r.cfg.SlotName).Scan(&s, &ahead)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read applied LSN of slot %q: %w", r.cfg.SlotName, err)
	}
	lsn, err = parseLSN(&s)
	return lsn, ahead, err
}

// session is one connection's life: check the slot (create it, or recreate it when it was
// lost), reconcile everything, then stream until an error or ctx ends. first says this
// process has not reconciled yet.
func (r *Replicator) session(ctx context.Context, first bool, log *slog.Logger) (res sessionResult, err error) {
	slot := r.cfg.SlotName
	info, err := r.inspectSlot(ctx)
	if err != nil {
		return res, err
	}
	reason := reasonReconnect
	if first {
		reason = reasonStart
	}
	if info.exists {
		switch {
		case info.slotType != "logical" || info.plugin != "pgoutput":
			return res, fmt.Errorf("replication slot %q is a %s slot with plugin %q, not a pgoutput logical slot: choose another SlotName", slot, info.slotType, info.plugin)
		case info.database != info.currentDB:
			return res, fmt.Errorf("replication slot %q belongs to database %q, not %q: slot names are cluster-wide, choose another SlotName", slot, info.database, info.currentDB)
		case info.activePID != 0:
			// Cheaper than START_REPLICATION, and no reconcile for a slot we cannot have.
			return res, &slotHeldError{pid: info.activePID}
		case info.walStatus == "lost":
			log.LogAttrs(ctx, slog.LevelWarn, "replication slot was invalidated (wal_status lost), recreating it and reconciling")
			if _, err := r.pool.Exec(ctx, dropSlotSQL, slot); err != nil {
				if pgCode(err) == codeObjectInUse {
					return res, &slotHeldError{err: fmt.Errorf("drop lost replication slot %q: %w", slot, err)}
				}
				if pgCode(err) != codeUndefinedObject {
					return res, fmt.Errorf("drop lost replication slot %q: %w", slot, err)
				}
			}
			info.exists = false
			reason = reasonLost
		}
	}

	cctx, cancel := context.WithTimeout(ctx, r.cfg.ReceiveTimeout)
	conn, err := pgconn.ConnectConfig(cctx, r.replCfg)
	cancel()
	if err != nil {
		return res, fmt.Errorf("open replication connection: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeConnection)
		defer cancel()
		_ = conn.Close(cctx)
	}()

	var newSlot pglogrepl.LSN
	if !info.exists {
		log.LogAttrs(ctx, slog.LevelInfo, "creating replication slot (waits for transactions in progress)")
		cctx, cancel := context.WithTimeout(ctx, slotCreateWait)
		created, err := pglogrepl.CreateReplicationSlot(cctx, conn, slot, "pgoutput", pglogrepl.CreateReplicationSlotOptions{
			Mode:           pglogrepl.LogicalReplication,
			SnapshotAction: "NOEXPORT_SNAPSHOT", // the reconcile below reads the table instead
		})
		cancel()
		if err != nil {
			if pgCode(err) == codeDuplicateObject {
				return res, fmt.Errorf("create replication slot %q: another process created it meanwhile: %w", slot, err)
			}
			return res, fmt.Errorf("create replication slot %q: %w", slot, err)
		}
		if newSlot, err = pglogrepl.ParseLSN(created.ConsistentPoint); err != nil {
			return res, fmt.Errorf("create replication slot %q: consistent point: %w", slot, err)
		}
		if reason != reasonLost {
			reason = reasonCreated
		}
		log.LogAttrs(ctx, slog.LevelInfo, "created replication slot", slog.String("lsn", newSlot.String()))
	}

	if newSlot == 0 {
		_, ahead, err := r.readApplied(ctx)
		if err != nil {
			return res, err
		}
		if ahead && info.confirmed != 0 {
			// Skipping by it would skip everything: start its history again at the slot's
			// position, which the reconcile below covers, as for a new slot.
			log.LogAttrs(ctx, slog.LevelWarn, "recorded applied LSN is ahead of the server's WAL (restored or replaced database?), resetting it",
				slog.String("lsn", info.confirmed.String()))
			newSlot = info.confirmed
		}
	}

	// Before streaming: whatever happened while nobody streamed (a new or recreated slot,
	// another replica dying between creating a slot and reconciling, rows written while the
	// slot was gone) is covered, because the slot exists and keeps every later change.
	if err := r.reconcile(ctx, reason, newSlot, log); err != nil {
		return res, err
	}
	res.reconciled = true
	applied, _, err := r.readApplied(ctx)
	if err != nil {
		return res, err
	}
	r.setApplied(applied)

	sctx, cancel := context.WithTimeout(ctx, r.cfg.ReceiveTimeout)
	err = pglogrepl.StartReplication(sctx, conn, slot, 0, pglogrepl.StartReplicationOptions{
		Mode: pglogrepl.LogicalReplication,
		PluginArgs: []string{
			"proto_version '1'", // committed transactions only, in commit order; no streaming of open ones
			fmt.Sprintf("publication_names '%s'", r.cfg.Publication),
		},
	})
	cancel()
	if err != nil {
		if pgCode(err) == codeObjectInUse {
			return res, &slotHeldError{err: fmt.Errorf("start replication on slot %q: %w", slot, err)}
		}
		return res, fmt.Errorf("start replication on slot %q: %w", slot, err)
	}
	res.streamed = true
	r.active.Store(true)
	r.metrics.leader.Set(1)
	defer func() {
		r.active.Store(false)
		r.metrics.leader.Set(0)
	}()

	// The slot is ours now: nobody else can move its position any more.
	if info, err = r.inspectSlot(ctx); err != nil {
		return res, err
	}
	if !info.exists || info.confirmed == 0 {
		return res, fmt.Errorf("replication slot %q vanished or has no confirmed position", slot)
	}
	s := &stream{
		r:         r,
		conn:      conn,
		log:       log,
		dec:       newDecoder(),
		confirmed: info.confirmed,
		received:  info.confirmed,
		applied:   applied,
		txnSyms:   map[string]struct{}{},
		batch:     batch{syms: map[string]struct{}{}},
	}
	log.LogAttrs(ctx, slog.LevelInfo, "streaming from replication slot",
		slog.String("lsn", info.confirmed.String()), slog.String("applied_lsn", applied.String()))
	return res, s.run(ctx)
}

// stream is the receive loop of one replication session.
type stream struct {
	r    *Replicator
	conn *pgconn.PgConn
	log  *slog.Logger
	dec  *decoder

	confirmed pglogrepl.LSN // flush position reported to the server
	received  pglogrepl.LSN // furthest WAL position seen (reported as the write position)
	applied   pglogrepl.LSN // end of the last upstream transaction whose effects are committed

	// The upstream transaction being received.
	inTxn   bool
	skip    bool // already applied (end LSN <= applied): ignore its changes
	txnXid  uint32
	txnSyms map[string]struct{}
	txnAll  bool
	txnOps  [numOps]int

	batch batch // committed upstream transactions not applied yet

	nextTick  time.Time // periodic status update with a reply request, and lag refresh
	lastHeard time.Time
	degraded  bool // warned about old rows without symbol_id
}

// batch is a run of consecutive committed upstream transactions, applied together.
type batch struct {
	syms    map[string]struct{}
	all     bool
	ops     [numOps]int
	xids    []uint32
	commits []time.Time // upstream commit timestamps, for the latency histogram
	end     pglogrepl.LSN
	since   time.Time // when the first transaction joined
	last    time.Time // when the last one joined
}

func (b *batch) empty() bool { return len(b.xids) == 0 }

func (b *batch) reset() {
	clear(b.syms)
	*b = batch{syms: b.syms, xids: b.xids[:0], commits: b.commits[:0]}
}

// due is when the batch must be applied even if more transactions keep arriving.
func (b *batch) due() time.Time {
	return minTime(b.last.Add(batchWait), b.since.Add(maxBatchAge))
}

func (s *stream) run(ctx context.Context) error {
	now := s.r.cfg.Now()
	s.lastHeard = now
	s.nextTick = now // a status update at once: it confirms what is applied already
	if s.applied > s.confirmed {
		s.confirm(s.applied)
	}
	for {
		now = s.r.cfg.Now()
		if !now.Before(s.nextTick) {
			if err := s.tick(ctx); err != nil {
				return err
			}
		}
		if silent := now.Sub(s.lastHeard); silent > s.r.cfg.ReceiveTimeout {
			return fmt.Errorf("no message from the server for %s (connection presumed dead)", silent.Round(time.Millisecond))
		}
		deadline := minTime(s.nextTick, s.lastHeard.Add(s.r.cfg.ReceiveTimeout))
		if !s.batch.empty() {
			deadline = minTime(deadline, s.batch.due())
		}
		rctx, cancel := context.WithTimeout(ctx, max(deadline.Sub(now), 0))
		msg, err := s.conn.ReceiveMessage(rctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			if !pgconn.Timeout(err) {
				return fmt.Errorf("receive replication message: %w", err)
			}
			// Nothing more arrived in time: apply what is complete.
			if !s.batch.empty() && !s.r.cfg.Now().Before(s.batch.due()) {
				if err := s.flush(ctx); err != nil {
					return err
				}
			}
			continue
		}
		s.lastHeard = s.r.cfg.Now()
		if err := s.receive(ctx, msg); err != nil {
			return err
		}
		if !s.batch.empty() && s.lastHeard.Sub(s.batch.since) >= maxBatchAge {
			if err := s.flush(ctx); err != nil {
				return err
			}
		}
	}
}

// tick sends the periodic status update, asking for a reply (a liveness check that also brings
// a keepalive with the server's WAL end, to advance an idle slot), and refreshes the lag gauge.
func (s *stream) tick(ctx context.Context) error {
	s.nextTick = s.r.cfg.Now().Add(s.r.cfg.StatusInterval)
	if err := s.sendStatus(ctx, true); err != nil {
		return err
	}
	lctx, cancel := context.WithTimeout(ctx, s.r.cfg.StatusInterval)
	defer cancel()
	var lag *int64
	if err := s.r.pool.QueryRow(lctx, lagSQL, s.r.cfg.SlotName).Scan(&lag); err != nil {
		if ctx.Err() == nil {
			s.log.LogAttrs(ctx, slog.LevelDebug, "read slot lag", slog.Any("error", err))
		}
		return nil
	}
	if lag != nil {
		s.r.metrics.lagBytes.Set(float64(*lag))
	}
	return nil
}

func (s *stream) receive(ctx context.Context, msg pgproto3.BackendMessage) error {
	switch msg := msg.(type) {
	case *pgproto3.CopyData:
		if len(msg.Data) == 0 {
			return errors.New("empty CopyData message")
		}
		switch msg.Data[0] {
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			pkm, err := pglogrepl.ParsePrimaryKeepaliveMessage(msg.Data[1:])
			if err != nil {
				return fmt.Errorf("parse keepalive: %w", err)
			}
			s.received = max(s.received, pkm.ServerWALEnd)
			// Nothing in flight: every transaction before the server's WAL end has been
			// received and applied, so the slot may move there and pin no WAL while our
			// table is quiet and the rest of the database is not.
			advanced := s.idle() && s.confirm(pkm.ServerWALEnd)
			if advanced || pkm.ReplyRequested {
				return s.sendStatus(ctx, false)
			}
			return nil
		case pglogrepl.XLogDataByteID:
			xld, err := pglogrepl.ParseXLogData(msg.Data[1:])
			if err != nil {
				return fmt.Errorf("parse XLogData: %w", err)
			}
			s.received = max(s.received, xld.WALStart)
			m, err := pglogrepl.Parse(xld.WALData)
			if err != nil {
				return fmt.Errorf("parse pgoutput message at %s: %w", xld.WALStart, err)
			}
			return s.handle(ctx, m)
		}
		return nil
	case *pgproto3.ErrorResponse:
		return fmt.Errorf("replication stream: %w", pgconn.ErrorResponseToPgError(msg))
	case *pgproto3.CopyDone:
		return errors.New("the server ended the replication stream")
	}
	return nil // notices and the like
}

// idle says nothing is in flight: no transaction being received, none waiting to be applied.
func (s *stream) idle() bool { return !s.inTxn && s.batch.empty() }

func (s *stream) handle(ctx context.Context, msg pglogrepl.Message) error {
	switch m := msg.(type) {
	case *pglogrepl.RelationMessage:
		s.dec.relation(m)
	case *pglogrepl.BeginMessage:
		if s.inTxn {
			return errors.New("pgoutput Begin inside a transaction")
		}
		s.inTxn = true
		s.txnXid = m.Xid
		// FinalLSN is where the commit record starts. Commit records do not overlap, so one
		// that starts before the end of the last applied commit is that commit or an earlier
		// one: already applied.
		s.skip = m.FinalLSN < s.applied
		clear(s.txnSyms)
		s.txnAll = false
		s.txnOps = [numOps]int{}
	case *pglogrepl.CommitMessage:
		if !s.inTxn {
			return errors.New("pgoutput Commit outside a transaction")
		}
		s.inTxn = false
		if s.skip || m.TransactionEndLSN <= s.applied {
			s.skip = false
			s.r.metrics.transactions.WithLabelValues("skipped").Inc()
			s.log.LogAttrs(ctx, slog.LevelDebug, "skipped transaction applied before",
				slog.String("lsn", m.TransactionEndLSN.String()), slog.String("applied_lsn", s.applied.String()))
			return nil
		}
		return s.commit(ctx, m)
	case *pglogrepl.InsertMessage, *pglogrepl.UpdateMessage, *pglogrepl.DeleteMessage, *pglogrepl.TruncateMessage:
		if !s.inTxn {
			return fmt.Errorf("pgoutput %T outside a transaction", msg)
		}
		c, ok, err := s.dec.change(msg)
		if err != nil || !ok {
			return err
		}
		s.r.metrics.received.WithLabelValues(c.op.String()).Inc()
		if s.skip {
			return nil
		}
		s.txnOps[c.op]++
		if c.degraded && !s.degraded {
			s.degraded = true
			s.log.LogAttrs(ctx, slog.LevelWarn, "old row without symbol_id: REPLICA IDENTITY of public.user_symbol_tracking is not FULL; re-deriving every symbol for such changes")
		}
		if c.all {
			s.txnAll = true
			clear(s.txnSyms)
			return nil
		}
		if s.txnAll {
			return nil
		}
		for _, sym := range c.symbols {
			s.txnSyms[sym] = struct{}{}
		}
		if len(s.txnSyms) >= s.r.cfg.MaxPendingSymbols {
			return s.applyPart(ctx)
		}
	case *pglogrepl.OriginMessage, *pglogrepl.TypeMessage, *pglogrepl.LogicalDecodingMessage:
		// Nothing to do: origins and types do not matter to the rule, messages are not ours.
	default:
		return fmt.Errorf("unexpected pgoutput message %T", msg)
	}
	return nil
}

// commit adds a committed upstream transaction to the batch, applying the batch first when the
// two together would hold too many symbols, and after when it is full.
func (s *stream) commit(ctx context.Context, m *pglogrepl.CommitMessage) error {
	b := &s.batch
	if !b.empty() && len(b.syms)+len(s.txnSyms) > s.r.cfg.MaxPendingSymbols {
		if err := s.flush(ctx); err != nil {
			return err
		}
	}
	now := s.r.cfg.Now()
	if b.empty() {
		b.since = now
	}
	b.last = now
	b.all = b.all || s.txnAll
	if b.all {
		clear(b.syms)
	} else {
		maps.Copy(b.syms, s.txnSyms)
	}
	for i, n := range s.txnOps {
		b.ops[i] += n
	}
	b.xids = append(b.xids, s.txnXid)
	b.commits = append(b.commits, m.CommitTime)
	b.end = m.TransactionEndLSN
	clear(s.txnSyms)
	s.txnAll = false
	if len(b.xids) >= maxBatchTxns || len(b.syms) >= s.r.cfg.MaxPendingSymbols {
		return s.flush(ctx)
	}
	return nil
}

// flush applies the batch in one database transaction that records its end LSN, then confirms
// that LSN to the server: only now is it safe for the slot to forget those transactions.
func (s *stream) flush(ctx context.Context) error {
	b := &s.batch
	res, err, connErr := s.apply(ctx, applyArgs{all: b.all, symbols: slices.Collect(maps.Keys(b.syms)), lsn: b.end, xids: b.xids, kind: kindStream})
	if err != nil {
		return fmt.Errorf("apply %d transactions ending at %s: %w", len(b.xids), b.end, err)
	}
	now := s.r.cfg.Now()
	end, txns := b.end, len(b.xids)
	s.applied = end
	s.r.setApplied(end)
	m := s.r.metrics
	m.transactions.WithLabelValues("applied").Add(float64(txns))
	for i, n := range b.ops {
		if n > 0 {
			m.applied.WithLabelValues(op(i).String()).Add(float64(n))
		}
	}
	for _, ct := range b.commits {
		m.latency.Observe(max(now.Sub(ct).Seconds(), 0))
	}
	m.lastApplied.Set(float64(now.UnixNano()) / 1e9)
	s.log.LogAttrs(ctx, slog.LevelDebug, "applied transactions", slog.String("lsn", end.String()),
		slog.Int("transactions", txns), slog.String("result", res.String()))
	b.reset()
	if connErr != nil {
		return connErr
	}
	if s.confirm(end) {
		return s.sendStatus(ctx, false)
	}
	return nil
}

// applyPart applies the symbols of the transaction being received so far, without recording
// anything: memory stays bounded, and if we die before its commit is applied, the replay
// applies them again, which changes nothing.
func (s *stream) applyPart(ctx context.Context) error {
	if !s.batch.empty() {
		if err := s.flush(ctx); err != nil {
			return err
		}
	}
	res, err, connErr := s.apply(ctx, applyArgs{symbols: slices.Collect(maps.Keys(s.txnSyms)), xids: []uint32{s.txnXid}, kind: kindPartial})
	if err != nil {
		return fmt.Errorf("apply part of a large transaction (%d symbols): %w", len(s.txnSyms), err)
	}
	if connErr != nil {
		return connErr
	}
	s.log.LogAttrs(ctx, slog.LevelDebug, "applied part of a large transaction",
		slog.Int("symbols", len(s.txnSyms)), slog.String("result", res.String()))
	clear(s.txnSyms)
	return nil
}

// apply runs one apply while a helper goroutine keeps sending status updates every
// StatusInterval, so a long apply (a lock wait, a big batch) never lets the server's
// wal_sender_timeout expire. The receive loop is blocked meanwhile, so the connection is used
// by one goroutine at a time.
//
// applyErr means nothing was applied; connErr means the effects are committed but the
// connection broke meanwhile (the session must end; the replay skips what was recorded).
func (s *stream) apply(ctx context.Context, a applyArgs) (res applyResult, applyErr, connErr error) {
	actx, cancel := context.WithTimeout(ctx, applyTimeout)
	defer cancel()
	stop := make(chan struct{})
	beat := make(chan error, 1)
	go func() {
		t := time.NewTicker(s.r.cfg.StatusInterval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				beat <- nil
				return
			case <-t.C:
				if err := s.sendStatus(actx, false); err != nil {
					beat <- err
					return
				}
			}
		}
	}()
	res, applyErr = s.r.apply(actx, a)
	close(stop)
	connErr = <-beat
	return res, applyErr, connErr
}

// confirm moves the flush position to lsn, if that is forward. Callers guarantee that the
// effects of every transaction ending at or before lsn are committed.
func (s *stream) confirm(lsn pglogrepl.LSN) bool {
	if lsn <= s.confirmed {
		return false
	}
	if hook := s.r.confirmHook; hook != nil && !hook(lsn) {
		return false
	}
	s.confirmed = lsn
	return true
}

func (s *stream) sendStatus(ctx context.Context, reply bool) error {
	err := pglogrepl.SendStandbyStatusUpdate(ctx, s.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: max(s.received, s.confirmed),
		// Never 0: pglogrepl would replace it with the write position.
		WALFlushPosition: s.confirmed,
		WALApplyPosition: s.confirmed,
		ClientTime:       s.r.cfg.Now(),
		ReplyRequested:   reply,
	})
	if err != nil {
		return fmt.Errorf("send standby status: %w", err)
	}
	return nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

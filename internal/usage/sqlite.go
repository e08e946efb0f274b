package usage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver
)

// sqliteMigrations are the SQLite schema's versions, in order; version i+1 is
// sqliteMigrations[i]. Never edit one that shipped: add the next.
var sqliteMigrations = []string{
	// 1: the records. time is UTC text, "2006-01-02T15:04:05.000000Z", whose
	// fixed width makes text order time order and lets the time groups be
	// prefixes. Durations are microseconds.
	`CREATE TABLE usage_records (
		request_id        TEXT PRIMARY KEY,
		time              TEXT NOT NULL,
		subscription      TEXT NOT NULL DEFAULT '',
		product           TEXT NOT NULL DEFAULT '',
		model             TEXT NOT NULL DEFAULT '',
		deployment        TEXT NOT NULL DEFAULT '',
		backend           TEXT NOT NULL DEFAULT '',
		region            TEXT NOT NULL DEFAULT '',
		status            INTEGER NOT NULL DEFAULT 0,
		stream            INTEGER NOT NULL DEFAULT 0,
		prompt_tokens     INTEGER NOT NULL DEFAULT 0,
		completion_tokens INTEGER NOT NULL DEFAULT 0,
		total_tokens      INTEGER NOT NULL DEFAULT 0,
		cached_tokens     INTEGER NOT NULL DEFAULT 0,
		reasoning_tokens  INTEGER NOT NULL DEFAULT 0,
		estimated         INTEGER NOT NULL DEFAULT 0,
		cache             TEXT NOT NULL DEFAULT '',
		attempts          INTEGER NOT NULL DEFAULT 0,
		latency_us        INTEGER NOT NULL DEFAULT 0,
		ttfb_us           INTEGER NOT NULL DEFAULT 0,
		overhead_us       INTEGER NOT NULL DEFAULT 0,
		cost              REAL NOT NULL DEFAULT 0,
		currency          TEXT NOT NULL DEFAULT '',
		client_ip         TEXT NOT NULL DEFAULT '',
		user_id           TEXT NOT NULL DEFAULT '',
		app_id            TEXT NOT NULL DEFAULT ''
	);
	CREATE INDEX usage_records_time ON usage_records (time);
	CREATE INDEX usage_records_subscription_time ON usage_records (subscription, time);
	CREATE INDEX usage_records_model_time ON usage_records (model, time);`,
	// 2: the client's own x-request-id, apart from the record's identity.
	`ALTER TABLE usage_records ADD COLUMN client_request_id TEXT NOT NULL DEFAULT '';`,
	// 3: what a response-cache hit saved.
	`ALTER TABLE usage_records ADD COLUMN saved_tokens INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE usage_records ADD COLUMN saved_cost REAL NOT NULL DEFAULT 0;`,
	// 4: subscriptions managed at run time, and their audit.
	`CREATE TABLE subscriptions (
		name             TEXT PRIMARY KEY,
		product          TEXT NOT NULL,
		principals       TEXT NOT NULL DEFAULT '[]',
		state            TEXT NOT NULL DEFAULT 'active',
		expires_at       TEXT NOT NULL DEFAULT '',
		primary_digest   TEXT NOT NULL UNIQUE,
		secondary_digest TEXT NOT NULL UNIQUE,
		primary_last4    TEXT NOT NULL,
		secondary_last4  TEXT NOT NULL,
		created_at       TEXT NOT NULL,
		updated_at       TEXT NOT NULL
	);
	CREATE TABLE subscription_audit (
		id           INTEGER PRIMARY KEY AUTOINCREMENT,
		time         TEXT NOT NULL,
		actor        TEXT NOT NULL,
		action       TEXT NOT NULL,
		subscription TEXT NOT NULL,
		detail       TEXT NOT NULL DEFAULT ''
	);`,
	// 5: reports select by time only, and group in a temporary B-tree.
	// The (subscription, time) and (model, time) indexes served none of
	// them better than the time index or a scan (EXPLAIN QUERY PLAN on
	// 200,000 records: a per-subscription report read the table through
	// its index, twice as slow), and cost every record two more index
	// inserts, a seventh of SQLite's work per record (issue 18).
	`DROP INDEX IF EXISTS usage_records_subscription_time;
	DROP INDEX IF EXISTS usage_records_model_time;`,
}

// columns are usage_records' columns in the order both stores write them.
var columns = []string{
	"request_id", "time", "subscription", "product", "model", "deployment", "backend", "region",
	"status", "stream", "prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens",
	"reasoning_tokens", "estimated", "cache", "attempts", "latency_us", "ttfb_us", "overhead_us",
	"cost", "currency", "client_ip", "user_id", "app_id", "client_request_id",
	"saved_tokens", "saved_cost",
}

// sqliteTimeFormat is how the SQLite store writes Record.Time.
const sqliteTimeFormat = "2006-01-02T15:04:05.000000Z"

// sqliteChunks are the row counts of the prepared multi-row INSERTs a batch
// is written with, largest first: a batch of 537 is 5×100, 3×10 and 7×1.
// Preparing them once saves parsing a statement of thousands of parameters
// per batch, which took a quarter of the writer's CPU.
var sqliteChunks = [...]int{100, 10, 1}

// sqliteStore keeps records in one SQLite file in WAL mode: one connection
// writes (SQLite allows one writer; BEGIN IMMEDIATE takes the lock up front so
// two writers wait on busy_timeout rather than fail on an upgrade), and
// read-only connections report alongside it.
type sqliteStore struct {
	w      *sql.DB // the one writer connection
	r      *sql.DB // read-only connections for Report
	insert [len(sqliteChunks)]*sql.Stmt
}

func openSQLite(ctx context.Context, path string) (*sqliteStore, error) {
	if path == "" || strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("usage: sqlite path %q: want a file name without '?'", path)
	}
	// synchronous(FULL): a committed batch survives a power loss, as the
	// journal's fsync does.
	w, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("usage: open sqlite %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	if err := migrateSQLite(ctx, w, sqliteMigrations); err != nil {
		w.Close()
		return nil, fmt.Errorf("usage: sqlite %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("usage: open sqlite %s: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	s := &sqliteStore{w: w, r: r}
	for i, n := range sqliteChunks {
		if s.insert[i], err = w.PrepareContext(ctx, insertSQLite(n)); err != nil {
			s.Close()
			return nil, fmt.Errorf("usage: sqlite %s: %w", path, err)
		}
	}
	return s, nil
}

// migrateSQLite applies the migrations db has not recorded in
// schema_migrations, each in its own IMMEDIATE transaction, which also keeps
// two processes opening one file from applying one twice.
func migrateSQLite(ctx context.Context, db *sql.DB, migrations []string) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at TEXT NOT NULL
	)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	for i, m := range migrations {
		if m == "" {
			continue // a version another branch holds: not recorded, so it applies once it lands
		}
		if err := applySQLite(ctx, db, i+1, m); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
	}
	return nil
}

func applySQLite(ctx context.Context, db *sql.DB, version int, migration string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, migration); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
		version, time.Now().UTC().Format(sqliteTimeFormat)); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *sqliteStore) Write(ctx context.Context, batch []Record) error {
	if len(batch) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("usage: sqlite write: %w", err)
	}
	defer tx.Rollback()
	args := make([]any, 0, sqliteChunks[0]*len(columns))
	for i, n := range sqliteChunks {
		if len(batch) < n {
			continue
		}
		stmt := tx.StmtContext(ctx, s.insert[i])
		for len(batch) >= n {
			args = sqliteArgs(args[:0], batch[:n])
			if _, err := stmt.ExecContext(ctx, args...); err != nil {
				return fmt.Errorf("usage: sqlite write: %w", err)
			}
			batch = batch[n:]
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("usage: sqlite write: %w", err)
	}
	return nil
}

// insertSQLite returns a multi-row INSERT of n records that skips ids already
// stored.
func insertSQLite(n int) string {
	row := "(" + strings.Repeat("?,", len(columns)-1) + "?)"
	var b strings.Builder
	b.Grow(64 + len(columns)*16 + n*(len(row)+1))
	b.WriteString("INSERT INTO usage_records (")
	b.WriteString(strings.Join(columns, ", "))
	b.WriteString(") VALUES ")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(row)
	}
	b.WriteString(" ON CONFLICT (request_id) DO NOTHING")
	return b.String()
}

// sqliteArgs lists the records' values in columns order.
func sqliteArgs(args []any, batch []Record) []any {
	for i := range batch {
		r := &batch[i]
		args = append(args,
			r.RequestID, r.Time.UTC().Format(sqliteTimeFormat),
			r.Subscription, r.Product, r.Model, r.Deployment, r.Backend, r.Region,
			r.Status, r.Stream, r.PromptTokens, r.CompletionTokens, r.TotalTokens, r.CachedTokens,
			r.ReasoningTokens, r.Estimated, r.Cache, r.Attempts,
			r.Latency.Microseconds(), r.TimeToFirstByte.Microseconds(), r.Overhead.Microseconds(),
			r.Cost, r.Currency, r.ClientIP, r.UserID, r.AppID, r.ClientRequestID,
			r.SavedTokens, r.SavedCost,
		)
	}
	return args
}

// sqliteGroup returns the SQL expression of a GroupBy key.
func sqliteGroup(key string) string {
	switch key {
	case "month":
		return "substr(time, 1, 7)"
	case "day":
		return "substr(time, 1, 10)"
	case "hour":
		return "substr(time, 1, 13) || ':00:00Z'"
	}
	return groups[key]
}

func (s *sqliteStore) Report(ctx context.Context, q Query) ([]Row, error) {
	if err := checkGroups(q.GroupBy); err != nil {
		return nil, fmt.Errorf("usage: report: %w", err)
	}
	var sel, pos []string
	for i, k := range q.GroupBy {
		sel = append(sel, sqliteGroup(k))
		pos = append(pos, fmt.Sprint(i+1))
	}
	sel = append(sel, "count(*)", "coalesce(sum(status >= 400), 0)",
		"coalesce(sum(prompt_tokens), 0)", "coalesce(sum(completion_tokens), 0)",
		"coalesce(sum(total_tokens), 0)", "coalesce(sum(cached_tokens), 0)", "coalesce(sum(cost), 0)",
		"coalesce(sum(saved_tokens), 0)", "coalesce(sum(saved_cost), 0)")
	query := "SELECT " + strings.Join(sel, ", ") + " FROM usage_records"
	var where []string
	var args []any
	if !q.From.IsZero() {
		where = append(where, "time >= ?")
		args = append(args, q.From.UTC().Format(sqliteTimeFormat))
	}
	if !q.To.IsZero() {
		where = append(where, "time < ?")
		args = append(args, q.To.UTC().Format(sqliteTimeFormat))
	}
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	if len(pos) > 0 {
		query += " GROUP BY " + strings.Join(pos, ", ") + " ORDER BY " + strings.Join(pos, ", ")
	}
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("usage: sqlite report: %w", err)
	}
	defer rows.Close()
	out, err := scanRows(rows, q.GroupBy)
	if err != nil {
		return nil, fmt.Errorf("usage: sqlite report: %w", err)
	}
	return out, nil
}

// rowScanner is what scanRows needs of database/sql's and pgx's rows.
type rowScanner interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// scanRows reads report rows: the group values, then the sums. A query
// without groups over no records yields one row of zeros, which is left out
// so that no records always means no rows.
func scanRows(rows rowScanner, keys []string) ([]Row, error) {
	var out []Row
	vals := make([]string, len(keys))
	for rows.Next() {
		var r Row
		dest := make([]any, 0, len(keys)+9)
		for i := range vals {
			dest = append(dest, &vals[i])
		}
		dest = append(dest, &r.Requests, &r.Errors, &r.PromptTokens, &r.CompletionTokens,
			&r.TotalTokens, &r.CachedTokens, &r.Cost, &r.SavedTokens, &r.SavedCost)
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		if r.Requests == 0 {
			continue
		}
		r.Group = make(map[string]string, len(keys))
		for i, k := range keys {
			r.Group[k] = vals[i]
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Ping checks the writer connection; the schema was brought up to date at
// open.
func (s *sqliteStore) Ping(ctx context.Context) error {
	if err := s.w.PingContext(ctx); err != nil {
		return fmt.Errorf("usage: sqlite: %w", err)
	}
	return nil
}

func (s *sqliteStore) Close() error {
	var errs []error
	for _, st := range s.insert {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(append(errs, s.r.Close(), s.w.Close())...)
}

var _ Pinger = (*sqliteStore)(nil)

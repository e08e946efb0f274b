package usage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
)

// postgresMigrations are the PostgreSQL schema's versions, in order; version
// i+1 is postgresMigrations[i]. Never edit one that shipped: add the next.
var postgresMigrations = []string{
	// 1: the records. Durations are microseconds.
	`CREATE TABLE usage_records (
		request_id        text PRIMARY KEY,
		time              timestamptz NOT NULL,
		subscription      text NOT NULL DEFAULT '',
		product           text NOT NULL DEFAULT '',
		model             text NOT NULL DEFAULT '',
		deployment        text NOT NULL DEFAULT '',
		backend           text NOT NULL DEFAULT '',
		region            text NOT NULL DEFAULT '',
		status            integer NOT NULL DEFAULT 0,
		stream            boolean NOT NULL DEFAULT false,
		prompt_tokens     bigint NOT NULL DEFAULT 0,
		completion_tokens bigint NOT NULL DEFAULT 0,
		total_tokens      bigint NOT NULL DEFAULT 0,
		cached_tokens     bigint NOT NULL DEFAULT 0,
		reasoning_tokens  bigint NOT NULL DEFAULT 0,
		estimated         boolean NOT NULL DEFAULT false,
		cache             text NOT NULL DEFAULT '',
		attempts          integer NOT NULL DEFAULT 0,
		latency_us        bigint NOT NULL DEFAULT 0,
		ttfb_us           bigint NOT NULL DEFAULT 0,
		overhead_us       bigint NOT NULL DEFAULT 0,
		cost              double precision NOT NULL DEFAULT 0,
		currency          text NOT NULL DEFAULT '',
		client_ip         text NOT NULL DEFAULT '',
		user_id           text NOT NULL DEFAULT '',
		app_id            text NOT NULL DEFAULT ''
	);
	CREATE INDEX usage_records_time ON usage_records (time);
	CREATE INDEX usage_records_subscription_time ON usage_records (subscription, time);
	CREATE INDEX usage_records_model_time ON usage_records (model, time);`,
	// 2: the client's own x-request-id, apart from the record's identity.
	`ALTER TABLE usage_records ADD COLUMN client_request_id text NOT NULL DEFAULT '';`,
	// 3: what a response-cache hit saved.
	`ALTER TABLE usage_records ADD COLUMN saved_tokens bigint NOT NULL DEFAULT 0;
	ALTER TABLE usage_records ADD COLUMN saved_cost double precision NOT NULL DEFAULT 0;`,
	// 4: subscriptions managed at run time, and their audit.
	`CREATE TABLE subscriptions (
		name             text PRIMARY KEY,
		product          text NOT NULL,
		principals       text NOT NULL DEFAULT '[]',
		state            text NOT NULL DEFAULT 'active',
		expires_at       text NOT NULL DEFAULT '',
		primary_digest   text NOT NULL UNIQUE,
		secondary_digest text NOT NULL UNIQUE,
		primary_last4    text NOT NULL,
		secondary_last4  text NOT NULL,
		created_at       text NOT NULL,
		updated_at       text NOT NULL
	);
	CREATE TABLE subscription_audit (
		id           bigserial PRIMARY KEY,
		time         text NOT NULL,
		actor        text NOT NULL,
		action       text NOT NULL,
		subscription text NOT NULL,
		detail       text NOT NULL DEFAULT ''
	);`,
	// 5: as SQLite's version 5: reports select by time only, so the
	// (subscription, time) and (model, time) indexes cost every record two
	// index inserts on the server for no report (issue 18).
	`DROP INDEX IF EXISTS usage_records_subscription_time;
	DROP INDEX IF EXISTS usage_records_model_time;`,
}

// migrationLock is the advisory lock key that serializes migrations of
// gateway instances starting together ("sluice" in ASCII).
const migrationLock = 0x736c75696365

// postgresConnectTimeout bounds a connection attempt when the URL sets no
// connect_timeout, so a dead server fails a write quickly and the ledger
// journals instead of waiting.
const postgresConnectTimeout = 5 * time.Second

// postgresStore keeps records in PostgreSQL through a pgx pool, which
// connects when a call needs a connection. The schema is brought up to date
// by the first call that reaches the server: at open when it answers, else
// later, so that the gateway starts while its database is down.
type postgresStore struct {
	pool     *pgxpool.Pool
	sqldb    *sql.DB // the pool as database/sql, for the subscriptions
	migrated atomic.Bool
	noTemp   atomic.Bool // the role may not create temporary tables: Write uses writeArrays
	migrate  sync.Mutex  // held while the migrations run, so one call runs them
}

// openPostgres makes the pool and tries the migrations once; a server that
// does not answer is not an error here.
func openPostgres(ctx context.Context, dsn string) (*postgresStore, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors quote the URL, password included.
		return nil, fmt.Errorf("usage: postgres url does not parse")
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = postgresConnectTimeout
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "sluice"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("usage: postgres: %w", err)
	}
	s := &postgresStore{pool: pool, sqldb: stdlib.OpenDBFromPool(pool)}
	_ = s.schema(ctx) // the Ledger's first Ping reports a failure
	return s, nil
}

// schema runs the migrations unless a call did already.
func (s *postgresStore) schema(ctx context.Context) error {
	if s.migrated.Load() {
		return nil
	}
	s.migrate.Lock()
	defer s.migrate.Unlock()
	if s.migrated.Load() {
		return nil
	}
	if err := migratePostgres(ctx, s.pool, postgresMigrations); err != nil {
		return fmt.Errorf("usage: postgres: %w", err)
	}
	s.migrated.Store(true)
	return nil
}

// Ping brings the schema up to date if no call did yet, and checks that the
// server answers.
func (s *postgresStore) Ping(ctx context.Context) error {
	if err := s.schema(ctx); err != nil {
		return err
	}
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("usage: postgres: %w", err)
	}
	return nil
}

// migratePostgres applies the migrations the database has not recorded in
// schema_migrations, each in its own transaction holding an advisory lock, so
// instances starting together apply each once.
func migratePostgres(ctx context.Context, pool *pgxpool.Pool, migrations []string) error {
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLock)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    integer PRIMARY KEY,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`)
		return err
	})
	if err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	for i, m := range migrations {
		version := i + 1
		if m == "" {
			continue // a version another branch holds: not recorded, so it applies once it lands
		}
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLock)); err != nil {
				return err
			}
			var done bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`, version).Scan(&done); err != nil {
				return err
			}
			if done {
				return nil
			}
			if _, err := tx.Exec(ctx, m); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, version)
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %d: %w", version, err)
		}
	}
	return nil
}

// A batch goes to PostgreSQL with COPY into a temporary table of the
// connection's, then one INSERT from it that skips ids already stored, all
// in one transaction; the temporary table empties itself at the commit.
// COPY's rows cost the gateway about two thirds of the CPU of an INSERT of
// one array per column (unnest), whose arrays pgx encodes value by value
// through its generic codec (issue 18). A role that may not create
// temporary tables (TEMPORARY privilege revoked) gets that INSERT.
var (
	stagePostgres  = `CREATE TEMPORARY TABLE IF NOT EXISTS usage_records_batch (LIKE usage_records) ON COMMIT DELETE ROWS`
	insertPostgres = `INSERT INTO usage_records (` + strings.Join(columns, ", ") + `)
		SELECT ` + strings.Join(columns, ", ") + ` FROM usage_records_batch
		ON CONFLICT (request_id) DO NOTHING`
)

func (s *postgresStore) Write(ctx context.Context, batch []Record) error {
	if len(batch) == 0 {
		return nil
	}
	if err := s.schema(ctx); err != nil {
		return err
	}
	if s.noTemp.Load() {
		return s.writeArrays(ctx, batch)
	}
	row := make([]any, 0, len(columns))
	rows := pgx.CopyFromSlice(len(batch), func(i int) ([]any, error) {
		r := &batch[i]
		row = append(row[:0], text(r.RequestID), r.Time,
			text(r.Subscription), text(r.Product), text(r.Model),
			text(r.Deployment), text(r.Backend), text(r.Region),
			int4(r.Status), r.Stream,
			r.PromptTokens, r.CompletionTokens, r.TotalTokens, r.CachedTokens, r.ReasoningTokens,
			r.Estimated, text(r.Cache), int4(r.Attempts),
			r.Latency.Microseconds(), r.TimeToFirstByte.Microseconds(), r.Overhead.Microseconds(),
			r.Cost, text(r.Currency), text(r.ClientIP), text(r.UserID), text(r.AppID),
			text(r.ClientRequestID), r.SavedTokens, r.SavedCost)
		return row, nil
	})
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, stagePostgres); err != nil {
			if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) && pe.Code == "42501" {
				return errNoTemp // insufficient_privilege
			}
			return err
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"usage_records_batch"}, columns, rows); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, insertPostgres)
		return err
	})
	if errors.Is(err, errNoTemp) {
		s.noTemp.Store(true)
		return s.writeArrays(ctx, batch)
	}
	if err != nil {
		return fmt.Errorf("usage: postgres write: %w", err)
	}
	return nil
}

// insertArraysPostgres writes a batch as one statement, one array parameter
// per column, so the statement is the same for every batch size and pgx
// prepares it once per connection. It is the way for a role that may not
// create temporary tables.
var insertArraysPostgres = `INSERT INTO usage_records (` + strings.Join(columns, ", ") + `)
	SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[],
		$6::text[], $7::text[], $8::text[], $9::integer[], $10::boolean[], $11::bigint[],
		$12::bigint[], $13::bigint[], $14::bigint[], $15::bigint[], $16::boolean[], $17::text[],
		$18::integer[], $19::bigint[], $20::bigint[], $21::bigint[], $22::double precision[],
		$23::text[], $24::text[], $25::text[], $26::text[], $27::text[], $28::bigint[],
		$29::double precision[])
	ON CONFLICT (request_id) DO NOTHING`

func (s *postgresStore) writeArrays(ctx context.Context, batch []Record) error {
	n := len(batch)
	var (
		ids, subs, products, models, deployments, backends, regions = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		caches, currencies, ips, users, apps, clientIDs             = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		times                                                       = make([]time.Time, n)
		statuses, attempts                                          = make([]int32, n), make([]int32, n)
		streams, estimated                                          = make([]bool, n), make([]bool, n)
		prompt, completion, total, cached, reasoning                = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		latency, ttfb, overhead                                     = make([]int64, n), make([]int64, n), make([]int64, n)
		costs, savedCosts                                           = make([]float64, n), make([]float64, n)
		savedTokens                                                 = make([]int64, n)
	)
	for i := range batch {
		r := &batch[i]
		ids[i], times[i] = text(r.RequestID), r.Time
		subs[i], products[i], models[i] = text(r.Subscription), text(r.Product), text(r.Model)
		deployments[i], backends[i], regions[i] = text(r.Deployment), text(r.Backend), text(r.Region)
		statuses[i], streams[i] = int4(r.Status), r.Stream
		prompt[i], completion[i], total[i] = r.PromptTokens, r.CompletionTokens, r.TotalTokens
		cached[i], reasoning[i], estimated[i] = r.CachedTokens, r.ReasoningTokens, r.Estimated
		caches[i], attempts[i] = text(r.Cache), int4(r.Attempts)
		latency[i], ttfb[i], overhead[i] = r.Latency.Microseconds(), r.TimeToFirstByte.Microseconds(), r.Overhead.Microseconds()
		costs[i], currencies[i] = r.Cost, text(r.Currency)
		ips[i], users[i], apps[i] = text(r.ClientIP), text(r.UserID), text(r.AppID)
		clientIDs[i] = text(r.ClientRequestID)
		savedTokens[i], savedCosts[i] = r.SavedTokens, r.SavedCost
	}
	_, err := s.pool.Exec(ctx, insertArraysPostgres, ids, times, subs, products, models, deployments,
		backends, regions, statuses, streams, prompt, completion, total, cached, reasoning,
		estimated, caches, attempts, latency, ttfb, overhead, costs, currencies, ips, users, apps, clientIDs,
		savedTokens, savedCosts)
	if err != nil {
		return fmt.Errorf("usage: postgres write: %w", err)
	}
	return nil
}

// errNoTemp is Write's note that the role may not create the temporary
// table.
var errNoTemp = errors.New("usage: postgres: no temporary tables")

// text makes s storable as PostgreSQL text, which rejects NUL bytes and
// invalid UTF-8. Values such as x-user-id come from clients; one bad byte
// must not make a batch fail forever.
func text(s string) string {
	if utf8.ValidString(s) && !strings.ContainsRune(s, 0) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}

// int4 clamps v to PostgreSQL's integer.
func int4(v int) int32 {
	return int32(min(max(v, math.MinInt32), math.MaxInt32))
}

// postgresGroup returns the SQL expression of a GroupBy key. Text sorts
// bytewise (COLLATE "C") whatever the database's locale, as in SQLite.
func postgresGroup(key string) string {
	switch key {
	case "month":
		return `to_char(time AT TIME ZONE 'UTC', 'YYYY-MM')`
	case "day":
		return `to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD')`
	case "hour":
		return `to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24":00:00Z"')`
	}
	return groups[key] + ` COLLATE "C"`
}

func (s *postgresStore) Report(ctx context.Context, q Query) ([]Row, error) {
	if err := checkGroups(q.GroupBy); err != nil {
		return nil, fmt.Errorf("usage: report: %w", err)
	}
	if err := s.schema(ctx); err != nil {
		return nil, err
	}
	var sel, pos []string
	for i, k := range q.GroupBy {
		sel = append(sel, postgresGroup(k))
		pos = append(pos, fmt.Sprint(i+1))
	}
	sel = append(sel, "count(*)", "count(*) FILTER (WHERE status >= 400)",
		"coalesce(sum(prompt_tokens), 0)::bigint", "coalesce(sum(completion_tokens), 0)::bigint",
		"coalesce(sum(total_tokens), 0)::bigint", "coalesce(sum(cached_tokens), 0)::bigint",
		"coalesce(sum(cost), 0)::double precision",
		"coalesce(sum(saved_tokens), 0)::bigint", "coalesce(sum(saved_cost), 0)::double precision")
	query := "SELECT " + strings.Join(sel, ", ") + " FROM usage_records"
	var where []string
	var args []any
	if !q.From.IsZero() {
		args = append(args, q.From)
		where = append(where, fmt.Sprintf("time >= $%d", len(args)))
	}
	if !q.To.IsZero() {
		args = append(args, q.To)
		where = append(where, fmt.Sprintf("time < $%d", len(args)))
	}
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	if len(pos) > 0 {
		query += " GROUP BY " + strings.Join(pos, ", ") + " ORDER BY " + strings.Join(pos, ", ")
	}
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("usage: postgres report: %w", err)
	}
	defer rows.Close()
	out, err := scanRows(rows, q.GroupBy)
	if err != nil {
		return nil, fmt.Errorf("usage: postgres report: %w", err)
	}
	return out, nil
}

func (s *postgresStore) Close() error {
	_ = s.sqldb.Close()
	s.pool.Close()
	return nil
}

var _ Pinger = (*postgresStore)(nil)

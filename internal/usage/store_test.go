package usage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sluice-gateway/sluice/internal/pgtest"
)

// storeKind makes DSNs of fresh, empty databases of one store.
type storeKind struct {
	name  string
	fresh func(t *testing.T) string
}

// storeKinds returns SQLite and PostgreSQL; the PostgreSQL databases share
// one server, started here.
func storeKinds(t *testing.T) []storeKind {
	pg := pgtest.Start(t)
	var n atomic.Int32
	return []storeKind{
		{"sqlite", func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "usage.db") }},
		{"postgres", func(t *testing.T) string { return createDatabase(t, pg, fmt.Sprintf("usage_%d", n.Add(1))) }},
	}
}

// createDatabase creates a database on the server and returns its URL.
func createDatabase(t *testing.T, pg *pgtest.Server, name string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.URL())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	return strings.Replace(pg.URL(), "/"+pgtest.Database+"?", "/"+name+"?", 1)
}

// open opens a store and closes it when the test ends.
func open(t testing.TB, dsn string) Store {
	t.Helper()
	s, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func write(t testing.TB, s Store, recs ...Record) {
	t.Helper()
	if err := s.Write(context.Background(), recs); err != nil {
		t.Fatalf("Write: %v", err)
	}
}

func report(t testing.TB, s Store, q Query) []Row {
	t.Helper()
	rows, err := s.Report(context.Background(), q)
	if err != nil {
		t.Fatalf("Report(%+v): %v", q, err)
	}
	return rows
}

// total returns the report of everything, or a zero Row.
func total(t testing.TB, s Store) Row {
	t.Helper()
	rows := report(t, s, Query{})
	if len(rows) == 0 {
		return Row{Group: map[string]string{}}
	}
	return rows[0]
}

// readRecord reads one stored record back, as far as the store keeps it.
func readRecord(t *testing.T, s Store, id string) Record {
	t.Helper()
	ctx := context.Background()
	var r Record
	var tm any
	var lat, ttfb, ovh int64
	dest := []any{&r.RequestID, &tm, &r.Subscription, &r.Product, &r.Model, &r.Deployment,
		&r.Backend, &r.Region, &r.Status, &r.Stream, &r.PromptTokens, &r.CompletionTokens,
		&r.TotalTokens, &r.CachedTokens, &r.ReasoningTokens, &r.Estimated, &r.Cache, &r.Attempts,
		&lat, &ttfb, &ovh, &r.Cost, &r.Currency, &r.ClientIP, &r.UserID, &r.AppID, &r.ClientRequestID,
		&r.SavedTokens, &r.SavedCost}
	q := "SELECT " + strings.Join(columns, ", ") + " FROM usage_records WHERE request_id = "
	switch s := s.(type) {
	case *sqliteStore:
		var ts string
		dest[1] = &ts
		if err := s.r.QueryRowContext(ctx, q+"?", id).Scan(dest...); err != nil {
			t.Fatalf("read %s: %v", id, err)
		}
		var err error
		if r.Time, err = time.Parse(sqliteTimeFormat, ts); err != nil {
			t.Fatalf("read %s: time %q: %v", id, ts, err)
		}
	case *postgresStore:
		dest[1] = &r.Time
		if err := s.pool.QueryRow(ctx, q+"$1", id).Scan(dest...); err != nil {
			t.Fatalf("read %s: %v", id, err)
		}
		r.Time = r.Time.UTC()
	default:
		t.Fatalf("read %s: unknown store %T", id, s)
	}
	r.Latency, r.TimeToFirstByte, r.Overhead = time.Duration(lat)*time.Microsecond, time.Duration(ttfb)*time.Microsecond, time.Duration(ovh)*time.Microsecond
	return r
}

// migrations returns the versions recorded in schema_migrations.
func migrations(t *testing.T, s Store) []int {
	t.Helper()
	ctx := context.Background()
	var rows rowScanner
	const q = "SELECT version FROM schema_migrations ORDER BY version"
	switch s := s.(type) {
	case *sqliteStore:
		r, err := s.r.QueryContext(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		rows = r
	case *postgresStore:
		r, err := s.pool.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		rows = r
	default:
		t.Fatalf("unknown store %T", s)
	}
	var vs []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return vs
}

var t0 = time.Date(2026, 5, 20, 10, 30, 0, 0, time.UTC)

// reportRecords are the records the report cases group.
var reportRecords = []Record{
	{RequestID: "r1", Time: t0, Subscription: "alpha", Product: "gold", Model: "gpt-4o", Region: "eastus",
		Status: 200, PromptTokens: 100, CompletionTokens: 50, TotalTokens: 150, CachedTokens: 10, Cost: 0.5, Currency: "USD", UserID: "u1"},
	{RequestID: "r2", Time: t0.Add(35 * time.Minute), Subscription: "alpha", Product: "gold", Model: "gpt-4o-mini", Region: "westeurope",
		Status: 429, PromptTokens: 20, TotalTokens: 20, Currency: "USD", UserID: "u2"},
	{RequestID: "r3", Time: time.Date(2026, 5, 21, 0, 0, 0, 0, time.UTC), Subscription: "beta", Product: "silver", Model: "gpt-4o", Region: "eastus",
		Status: 200, PromptTokens: 300, CompletionTokens: 100, TotalTokens: 400, Cost: 1.25, Currency: "USD", UserID: "u1"},
	{RequestID: "r4", Time: time.Date(2026, 6, 1, 23, 59, 59, 999999000, time.UTC), Subscription: "beta", Product: "silver", Model: "gpt-4o", Region: "eastus",
		Status: 500, PromptTokens: 5, TotalTokens: 5, Currency: "USD"},
	// "Alpha" sorts before "alpha": groups sort bytewise in both stores.
	{RequestID: "r5", Time: time.Date(2026, 4, 30, 23, 59, 59, 0, time.FixedZone("CEST", 2*3600)), Subscription: "Alpha", Model: "gpt-4o",
		Status: 200, PromptTokens: 1, CompletionTokens: 1, TotalTokens: 2, Cost: 0.25, Currency: "EUR"},
}

func row(group map[string]string, requests, errs, prompt, completion, total, cached int64, cost float64) Row {
	return Row{Group: group, Requests: requests, Errors: errs, PromptTokens: prompt,
		CompletionTokens: completion, TotalTokens: total, CachedTokens: cached, Cost: cost}
}

func g(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

var reportCases = []struct {
	name string
	q    Query
	want []Row
}{
	{"everything", Query{}, []Row{row(g(), 5, 2, 426, 151, 577, 10, 2)}},
	{"by subscription", Query{GroupBy: []string{"subscription"}}, []Row{
		row(g("subscription", "Alpha"), 1, 0, 1, 1, 2, 0, 0.25),
		row(g("subscription", "alpha"), 2, 1, 120, 50, 170, 10, 0.5),
		row(g("subscription", "beta"), 2, 1, 305, 100, 405, 0, 1.25),
	}},
	{"by model then day", Query{GroupBy: []string{"model", "day"}}, []Row{
		// r5 arrived at 23:59:59 CEST, 21:59:59 UTC.
		row(g("model", "gpt-4o", "day", "2026-04-30"), 1, 0, 1, 1, 2, 0, 0.25),
		row(g("model", "gpt-4o", "day", "2026-05-20"), 1, 0, 100, 50, 150, 10, 0.5),
		row(g("model", "gpt-4o", "day", "2026-05-21"), 1, 0, 300, 100, 400, 0, 1.25),
		row(g("model", "gpt-4o", "day", "2026-06-01"), 1, 1, 5, 0, 5, 0, 0),
		row(g("model", "gpt-4o-mini", "day", "2026-05-20"), 1, 1, 20, 0, 20, 0, 0),
	}},
	{"by month", Query{GroupBy: []string{"month"}}, []Row{
		row(g("month", "2026-04"), 1, 0, 1, 1, 2, 0, 0.25),
		row(g("month", "2026-05"), 3, 1, 420, 150, 570, 10, 1.75),
		row(g("month", "2026-06"), 1, 1, 5, 0, 5, 0, 0),
	}},
	{"by hour within a day, To exclusive", Query{
		From: time.Date(2026, 5, 20, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 5, 21, 0, 0, 0, 0, time.UTC),
		GroupBy: []string{"hour"}}, []Row{
		row(g("hour", "2026-05-20T10:00:00Z"), 1, 0, 100, 50, 150, 10, 0.5),
		row(g("hour", "2026-05-20T11:00:00Z"), 1, 1, 20, 0, 20, 0, 0),
	}},
	{"From inclusive, no To", Query{From: time.Date(2026, 5, 21, 0, 0, 0, 0, time.UTC), GroupBy: []string{"day"}}, []Row{
		row(g("day", "2026-05-21"), 1, 0, 300, 100, 400, 0, 1.25),
		row(g("day", "2026-06-01"), 1, 1, 5, 0, 5, 0, 0),
	}},
	{"To in another zone", Query{To: time.Date(2026, 5, 21, 2, 0, 0, 0, time.FixedZone("CEST", 2*3600))}, []Row{
		row(g(), 3, 1, 121, 51, 172, 10, 0.75),
	}},
	{"microseconds kept at a month's end", Query{From: time.Date(2026, 6, 1, 23, 59, 59, 999999000, time.UTC), To: time.Date(2026, 6, 2, 0, 0, 0, 0, time.UTC)}, []Row{
		row(g(), 1, 1, 5, 0, 5, 0, 0),
	}},
	{"by product and region", Query{GroupBy: []string{"product", "region"}}, []Row{
		row(g("product", "", "region", ""), 1, 0, 1, 1, 2, 0, 0.25),
		row(g("product", "gold", "region", "eastus"), 1, 0, 100, 50, 150, 10, 0.5),
		row(g("product", "gold", "region", "westeurope"), 1, 1, 20, 0, 20, 0, 0),
		row(g("product", "silver", "region", "eastus"), 2, 1, 305, 100, 405, 0, 1.25),
	}},
	{"by currency", Query{GroupBy: []string{"currency"}}, []Row{
		row(g("currency", "EUR"), 1, 0, 1, 1, 2, 0, 0.25),
		row(g("currency", "USD"), 4, 2, 425, 150, 575, 10, 1.75),
	}},
	{"by user", Query{GroupBy: []string{"user"}}, []Row{
		row(g("user", ""), 2, 1, 6, 1, 7, 0, 0.25),
		row(g("user", "u1"), 2, 0, 400, 150, 550, 10, 1.75),
		row(g("user", "u2"), 1, 1, 20, 0, 20, 0, 0),
	}},
	{"nothing in range", Query{From: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}, nil},
	{"nothing in range, grouped", Query{From: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), GroupBy: []string{"model"}}, nil},
}

func TestStore(t *testing.T) {
	for _, kind := range storeKinds(t) {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			t.Run("write and read back", func(t *testing.T) { testWriteReadBack(t, kind.fresh(t)) })
			t.Run("idempotent", func(t *testing.T) { testIdempotent(t, kind.fresh(t)) })
			t.Run("report", func(t *testing.T) { testReport(t, kind.fresh(t)) })
			t.Run("migrations once", func(t *testing.T) { testMigrations(t, kind.fresh(t)) })
			t.Run("upgrade keeps records", func(t *testing.T) { testUpgrade(t, kind.fresh(t)) })
			t.Run("upgrade adds the cache's columns", func(t *testing.T) { testUpgradeCache(t, kind.fresh(t)) })
			t.Run("reopen keeps data", func(t *testing.T) { testReopen(t, kind.fresh(t)) })
			t.Run("batch larger than one insert", func(t *testing.T) { testLargeBatch(t, kind.fresh(t)) })
		})
	}
}

func testWriteReadBack(t *testing.T, dsn string) {
	s := open(t, dsn)
	full := Record{
		RequestID: "req-1", Time: time.Date(2026, 5, 20, 10, 30, 1, 123456789, time.UTC),
		Subscription: "sub", Product: "prod", Model: "gpt-4o", Deployment: "gpt-4o-dep", Backend: "aoai-east", Region: "eastus",
		Status: 200, Stream: true, PromptTokens: 11, CompletionTokens: 22, TotalTokens: 33, CachedTokens: 4, ReasoningTokens: 5,
		Estimated: true, Cache: "miss", Attempts: 2,
		Latency: 1500 * time.Millisecond, TimeToFirstByte: 250*time.Millisecond + 7*time.Microsecond, Overhead: 3 * time.Millisecond,
		Cost: 0.000123, Currency: "USD", ClientIP: "203.0.113.9", UserID: "alice", AppID: "app-7", ClientRequestID: "client-id-42",
	}
	write(t, s, full, Record{RequestID: "req-2", Time: t0})
	if err := s.Write(context.Background(), nil); err != nil {
		t.Errorf("Write(nil) = %v; want nil", err)
	}

	want := full
	want.Time = want.Time.Truncate(time.Microsecond)
	if diff := cmp.Diff(want, readRecord(t, s, "req-1")); diff != "" {
		t.Errorf("record read back differs (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(Record{RequestID: "req-2", Time: t0}, readRecord(t, s, "req-2")); diff != "" {
		t.Errorf("zero-valued record read back differs (-want +got):\n%s", diff)
	}

	// Client-supplied text that PostgreSQL's text type rejects (NUL, invalid
	// UTF-8) must not make the batch fail: it would fail on every retry.
	write(t, s, Record{RequestID: "req-3", Time: t0, UserID: "bad\x00user\xff", AppID: "\xc3"})
	if got := total(t, s).Requests; got != 3 {
		t.Errorf("records after writing odd text = %d; want 3", got)
	}
}

func testIdempotent(t *testing.T, dsn string) {
	s := open(t, dsn)
	a := Record{RequestID: "a", Time: t0, PromptTokens: 1}
	b := Record{RequestID: "b", Time: t0, PromptTokens: 10}
	write(t, s, a, b)
	// A replay of the same batch, the same id twice in one batch, and an id
	// written before with other values: each id keeps its first record.
	write(t, s, a, b)
	write(t, s, Record{RequestID: "c", Time: t0, PromptTokens: 100}, Record{RequestID: "c", Time: t0, PromptTokens: 1000})
	write(t, s, Record{RequestID: "a", Time: t0, PromptTokens: 5}, Record{RequestID: "d", Time: t0, PromptTokens: 10000})

	got := total(t, s)
	if got.Requests != 4 || got.PromptTokens != 10111 {
		t.Errorf("after rewrites: %d records, %d prompt tokens; want 4, 10111 (a 1, b 10, c 100, d 10000)", got.Requests, got.PromptTokens)
	}
}

func testReport(t *testing.T, dsn string) {
	s := open(t, dsn)
	write(t, s, reportRecords...)
	for _, tc := range reportCases {
		t.Run(tc.name, func(t *testing.T) {
			got := report(t, s, tc.q)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Report(%+v) differs (-want +got):\n%s", tc.q, diff)
			}
		})
	}
	for _, tc := range []struct {
		name    string
		groupBy []string
		want    error
	}{
		{"unknown", []string{"model", "colour"}, ErrUnknownGroup},
		{"column name that is no group", []string{"user_id"}, ErrUnknownGroup},
		{"repeated", []string{"model", "model"}, nil},
	} {
		t.Run("rejects "+tc.name, func(t *testing.T) {
			_, err := s.Report(context.Background(), Query{GroupBy: tc.groupBy})
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("Report(GroupBy %q) error = %v; want an error (%v)", tc.groupBy, err, tc.want)
			}
		})
	}
}

func testMigrations(t *testing.T, dsn string) {
	all := sqliteMigrations
	if strings.HasPrefix(dsn, "postgres") {
		all = postgresMigrations
	}
	wantVersions := appliedVersions(all)
	// Instances starting together: each migration must still run once
	// (they create tables without IF NOT EXISTS, so a second run fails).
	var wg sync.WaitGroup
	stores := make([]Store, 4)
	errs := make([]error, len(stores))
	for i := range stores {
		wg.Go(func() { stores[i], errs[i] = Open(context.Background(), dsn) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent Open %d: %v", i, err)
		}
		stores[i].Close()
	}
	for range 2 {
		s, err := Open(context.Background(), dsn)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		got := migrations(t, s)
		s.Close()
		if diff := cmp.Diff(wantVersions, got); diff != "" {
			t.Errorf("schema_migrations versions differ (-want +got):\n%s", diff)
		}
	}
}

// testUpgrade: a ledger made by the first schema, with a record in it, is
// migrated to the current one when opened, and keeps the record.
func testUpgrade(t *testing.T, dsn string) {
	ctx := context.Background()
	const insertV1 = `INSERT INTO usage_records (request_id, time, subscription, total_tokens) VALUES ('old-1', %s, 'sub', 7)`
	if strings.HasPrefix(dsn, "postgres") {
		pool, err := pgxpool.New(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		err = migratePostgres(ctx, pool, postgresMigrations[:1])
		if err == nil {
			_, err = pool.Exec(ctx, fmt.Sprintf(insertV1, "'2026-05-20T10:00:00Z'"))
		}
		pool.Close()
		if err != nil {
			t.Fatal(err)
		}
	} else {
		db, err := sql.Open("sqlite", strings.TrimPrefix(dsn, "sqlite:"))
		if err != nil {
			t.Fatal(err)
		}
		err = migrateSQLite(ctx, db, sqliteMigrations[:1])
		if err == nil {
			_, err = db.Exec(fmt.Sprintf(insertV1, "'2026-05-20T10:00:00.000000Z'"))
		}
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	s := open(t, dsn)
	write(t, s, Record{RequestID: "new-1", ClientRequestID: "client-1", Time: t0, Subscription: "sub", TotalTokens: 5})
	if got := readRecord(t, s, "old-1"); got.TotalTokens != 7 || got.ClientRequestID != "" {
		t.Errorf("the record from before the upgrade reads %+v; want 7 tokens and no client id", got)
	}
	if got := readRecord(t, s, "new-1"); got.ClientRequestID != "client-1" {
		t.Errorf("client_request_id after the upgrade = %q; want client-1", got.ClientRequestID)
	}
	// Version 5 dropped the indexes no report used.
	if got, want := indexes(t, s), []string{"usage_records_time"}; !cmp.Equal(got, want) {
		t.Errorf("usage_records' indexes after the upgrade = %q; want %q and the primary key", got, want)
	}
}

// indexes lists usage_records' indexes but its primary key's.
func indexes(t *testing.T, s Store) []string {
	t.Helper()
	ctx := context.Background()
	var rows rowScanner
	switch s := s.(type) {
	case *sqliteStore:
		r, err := s.r.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'index'
			AND tbl_name = 'usage_records' AND name NOT LIKE 'sqlite_autoindex%' ORDER BY name`)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		rows = r
	case *postgresStore:
		r, err := s.pool.Query(ctx, `SELECT indexname FROM pg_indexes
			WHERE tablename = 'usage_records' AND indexname <> 'usage_records_pkey' ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		rows = r
	default:
		t.Fatalf("unknown store %T", s)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}

// testUpgradeCache: a ledger of the schema that left version 3 empty for
// the response cache (versions 1, 2 and 4 applied) gets version 3 when
// opened, its saved_tokens and saved_cost, and keeps its records.
func testUpgradeCache(t *testing.T, dsn string) {
	ctx := context.Background()
	all := sqliteMigrations
	if strings.HasPrefix(dsn, "postgres") {
		all = postgresMigrations
	}
	const insert = `INSERT INTO usage_records (request_id, time, subscription, total_tokens, cache) VALUES ('old-1', %s, 'sub', 7, 'hit')`
	if strings.HasPrefix(dsn, "postgres") {
		pool, err := pgxpool.New(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		without3 := slices.Clone(postgresMigrations)
		without3[2] = ""
		err = migratePostgres(ctx, pool, without3)
		if err == nil {
			_, err = pool.Exec(ctx, fmt.Sprintf(insert, "'2026-05-20T10:00:00Z'"))
		}
		pool.Close()
		if err != nil {
			t.Fatal(err)
		}
	} else {
		db, err := sql.Open("sqlite", strings.TrimPrefix(dsn, "sqlite:"))
		if err != nil {
			t.Fatal(err)
		}
		without3 := slices.Clone(sqliteMigrations)
		without3[2] = ""
		err = migrateSQLite(ctx, db, without3)
		if err == nil {
			_, err = db.Exec(fmt.Sprintf(insert, "'2026-05-20T10:00:00.000000Z'"))
		}
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	s := open(t, dsn)
	if diff := cmp.Diff(appliedVersions(all), migrations(t, s)); diff != "" {
		t.Errorf("versions after the upgrade (-want +got):\n%s", diff)
	}
	write(t, s, Record{RequestID: "new-1", Time: t0, Subscription: "sub", Cache: "hit-exact", SavedTokens: 40, SavedCost: 0.5})
	if got := readRecord(t, s, "old-1"); got.TotalTokens != 7 || got.SavedTokens != 0 {
		t.Errorf("the record from before the upgrade reads %+v; want 7 tokens, none saved", got)
	}
	if got := readRecord(t, s, "new-1"); got.SavedTokens != 40 || got.SavedCost != 0.5 || got.Cache != "hit-exact" {
		t.Errorf("new record reads saved %d tokens, %v cost, cache %q; want 40, 0.5, hit-exact", got.SavedTokens, got.SavedCost, got.Cache)
	}
	rows, err := s.Report(ctx, Query{GroupBy: []string{"cache"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[1].Group["cache"] != "hit-exact" || rows[1].SavedTokens != 40 || rows[1].SavedCost != 0.5 {
		t.Errorf("report by cache = %+v; want two rows, hit-exact saving 40 tokens and 0.5", rows)
	}
}

func testReopen(t *testing.T, dsn string) {
	s, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	write(t, s, reportRecords...)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s = open(t, dsn)
	if got := total(t, s); got.Requests != int64(len(reportRecords)) || got.TotalTokens != 577 {
		t.Errorf("after reopening: %d records, %d tokens; want %d, 577", got.Requests, got.TotalTokens, len(reportRecords))
	}
}

func testLargeBatch(t *testing.T, dsn string) {
	s := open(t, dsn)
	n := 2*sqliteChunks[0] + 17 // every prepared chunk size
	batch := make([]Record, n)
	for i := range batch {
		batch[i] = Record{RequestID: fmt.Sprint("id-", i), Time: t0.Add(time.Duration(i) * time.Second), TotalTokens: 1}
	}
	write(t, s, batch...)
	write(t, s, batch...)
	if got := total(t, s); got.Requests != int64(n) || got.TotalTokens != int64(n) {
		t.Errorf("after a batch of %d written twice: %d records, %d tokens; want %d each", n, got.Requests, got.TotalTokens, n)
	}
}

// PostgreSQL down at open is not an error: the store migrates the database
// on the first call that reaches the server.
func TestPostgresOpensWhileDown(t *testing.T) {
	pg := pgtest.Start(t)
	pg.Stop()
	s := open(t, pg.URL())
	ctx := context.Background()
	p, ok := s.(Pinger)
	if !ok {
		t.Fatalf("%T is not a Pinger", s)
	}
	if err := p.Ping(ctx); err == nil {
		t.Fatal("Ping with the server down succeeded; want an error")
	}
	if err := s.Write(ctx, []Record{record(1)}); err == nil {
		t.Fatal("Write with the server down succeeded; want an error")
	}
	pg.Restart()
	if err := p.Ping(ctx); err != nil {
		t.Fatalf("Ping with the server up: %v", err)
	}
	if got := migrations(t, s); len(got) != len(appliedVersions(postgresMigrations)) {
		t.Errorf("schema_migrations after the first contact = %v; want all %d versions", got, len(appliedVersions(postgresMigrations)))
	}
	write(t, s, record(1))
	if got := total(t, s); got.Requests != 1 {
		t.Errorf("store holds %d records; want 1", got.Requests)
	}
}

func TestOpenRejects(t *testing.T) {
	for _, dsn := range []string{"", "mysql://x", "sqlite:", "sqlite:/tmp/a?b.db", "postgres://%zz"} {
		if s, err := Open(context.Background(), dsn); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded; want an error", dsn)
		}
	}
	// The password of a URL that fails to parse stays out of the error.
	_, err := Open(context.Background(), "postgres://u:s3cret@host:badport/db")
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("Open error = %v; want one without the password", err)
	}
}

// The SQLite store is a file in WAL mode with a busy timeout, written by one
// connection.
func TestSQLiteSettings(t *testing.T) {
	s := open(t, "sqlite:"+filepath.Join(t.TempDir(), "usage.db")).(*sqliteStore)
	for _, tc := range []struct {
		db     *sql.DB
		pragma string
		want   string
	}{
		{s.w, "journal_mode", "wal"},
		{s.w, "busy_timeout", "5000"},
		{s.w, "synchronous", "2"},
		{s.r, "query_only", "1"},
	} {
		var got string
		if err := tc.db.QueryRow("PRAGMA " + tc.pragma).Scan(&got); err != nil || got != tc.want {
			t.Errorf("PRAGMA %s = %q, %v; want %q", tc.pragma, got, err, tc.want)
		}
	}
	if got := s.w.Stats().MaxOpenConnections; got != 1 {
		t.Errorf("writer connections = %d; want 1", got)
	}
}

// appliedVersions are the versions of the migrations that are applied and
// recorded: an empty one (a version another branch holds) is neither.
func appliedVersions(migrations []string) []int {
	var out []int
	for i, m := range migrations {
		if m != "" {
			out = append(out, i+1)
		}
	}
	return out
}

// A role that may not create temporary tables writes its batches with the
// array INSERT instead of COPY, idempotent all the same.
func TestPostgresWithoutTemporaryTables(t *testing.T) {
	pg := pgtest.Start(t)
	admin := createDatabase(t, pg, "notemp")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"CREATE ROLE writer LOGIN",
		"GRANT ALL ON SCHEMA public TO writer",
		"REVOKE TEMPORARY ON DATABASE notemp FROM PUBLIC",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	conn.Close(ctx)
	s := open(t, strings.Replace(admin, "//postgres@", "//writer@", 1))
	for range 2 {
		write(t, s, record(0), record(1), record(2))
	}
	if !s.(*postgresStore).noTemp.Load() {
		t.Error("the store did not note that it may not create temporary tables")
	}
	wantRecords(t, s, 3)
}

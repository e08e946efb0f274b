// Package usage is the usage ledger: one record per client request (who, which
// model and backend, tokens, cost, timings) kept in SQLite or PostgreSQL for
// chargeback and reports. Azure API Management sends usage to Event Hub only
// for non-streaming responses and estimates streamed tokens; Sluice records
// every request, streams included, with the backend's own counts where it
// reported them.
//
// Records are written to the store off the request path, and kept on disk
// until it has them: Ledger.Add appends each record to a local journal, a
// write-ahead log, with a copy into a memory-mapped file (so a killed
// process loses none), and queues it; one writer goroutine stores batches,
// each in one transaction, and lets go of the journal's records once the
// store committed them; a syncer goroutine fsyncs the journal every 100ms
// (so a power loss loses at most that). While the store is unavailable, at start included, the records
// wait in the journal and are replayed once it is back. Stores are
// idempotent by request id, so a batch written twice (a replay after a
// crash, a commit whose answer was lost) is kept once.
//
// The package is a mechanism: it imports no other Sluice package.
package usage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Record is the usage of one client request. Its JSON form (the field tags) is
// the journal's line format: durations are nanoseconds.
type Record struct {
	// RequestID identifies the request; stores keep one record per id. It
	// should come from NewID (time-ordered, which keeps the stores' index
	// cheap to grow); Ledger.Add assigns one when it is empty.
	RequestID string `json:"request_id"`
	// ClientRequestID is the x-request-id the client sent, if any. It is not
	// an identity: clients may send one id twice.
	ClientRequestID string `json:"client_request_id,omitempty"`
	// Time is when the request arrived. Ledger.Add converts it to UTC; stores
	// keep microseconds.
	Time time.Time `json:"time"`

	Subscription string `json:"subscription,omitempty"`
	Product      string `json:"product,omitempty"`
	Model        string `json:"model,omitempty"`
	Deployment   string `json:"deployment,omitempty"`
	Backend      string `json:"backend,omitempty"`
	Region       string `json:"region,omitempty"`

	// Status is the HTTP status the client got.
	Status int  `json:"status"`
	Stream bool `json:"stream,omitempty"`

	PromptTokens     int64 `json:"prompt_tokens,omitempty"`
	CompletionTokens int64 `json:"completion_tokens,omitempty"`
	TotalTokens      int64 `json:"total_tokens,omitempty"`
	CachedTokens     int64 `json:"cached_tokens,omitempty"`
	ReasoningTokens  int64 `json:"reasoning_tokens,omitempty"`
	// Estimated reports that Sluice computed the counts because the backend
	// did not report them.
	Estimated bool `json:"estimated,omitempty"`

	// Cache is the response cache's result: "" (not consulted),
	// "hit-exact", "hit-semantic", "miss" or "bypass".
	Cache string `json:"cache,omitempty"`
	// SavedTokens and SavedCost are what a cache hit saved: the tokens and
	// the cost of the answer it replayed, which the hit itself did not
	// spend.
	SavedTokens int64   `json:"saved_tokens,omitempty"`
	SavedCost   float64 `json:"saved_cost,omitempty"`
	// Attempts counts the backend calls made for the request, retries included.
	Attempts int `json:"attempts,omitempty"`

	// Latency is the whole request; TimeToFirstByte is until the first byte
	// went to the client; Overhead is the time spent inside Sluice.
	Latency         time.Duration `json:"latency_ns,omitempty"`
	TimeToFirstByte time.Duration `json:"ttfb_ns,omitempty"`
	Overhead        time.Duration `json:"overhead_ns,omitempty"`

	// Cost is the request's price in Currency.
	Cost     float64 `json:"cost,omitempty"`
	Currency string  `json:"currency,omitempty"`

	ClientIP string `json:"client_ip,omitempty"`
	// UserID and AppID come from the x-user-id and x-app-id request headers.
	UserID string `json:"user_id,omitempty"`
	AppID  string `json:"app_id,omitempty"`
}

// Store keeps records. Open returns the SQLite or the PostgreSQL one. Both are
// safe for concurrent use.
type Store interface {
	// Write stores the batch in one transaction: all of it or, with an
	// error, none. It is idempotent by RequestID: a record whose id is
	// already stored, or repeated in the batch, is skipped. The batch is the
	// caller's again once Write returns.
	Write(ctx context.Context, batch []Record) error
	// Report sums the records in the query's time range by its groups.
	Report(ctx context.Context, q Query) ([]Row, error)
	// Close releases the store's connections.
	Close() error
}

// Pinger is a Store that can tell whether it answers, without writing. Both
// of the package's stores are Pingers: Ping reports whether the store
// answers and its schema is up to date (PostgreSQL's is brought up to date on
// the first Ping that reaches the server). The Ledger pings at start and,
// while the store fails, before trying it again; a Store that is not a
// Pinger is taken to answer until a write fails.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Query selects and groups records for a report.
type Query struct {
	// From and To bound Record.Time: From <= Time < To. A zero From or To
	// leaves that side open.
	From, To time.Time
	// GroupBy lists the groups, in the order rows are sorted by: subscription,
	// product, model, deployment, backend, region, currency, user, app, cache and
	// day, hour or month (of Time in UTC). None sums everything into one row.
	// Costs are summed as they are: group by currency when prices use more
	// than one.
	GroupBy []string
}

// Row is one group of a report.
type Row struct {
	// Group holds the value of each of the query's GroupBy keys. Time groups
	// read "2006-01" (month), "2006-01-02" (day) and "2006-01-02T15:00:00Z"
	// (hour).
	Group map[string]string `json:"group"`
	// Requests counts the records; Errors those with a status of 400 or more.
	Requests         int64   `json:"requests"`
	Errors           int64   `json:"errors"`
	PromptTokens     int64   `json:"prompt_tokens"`
	CompletionTokens int64   `json:"completion_tokens"`
	TotalTokens      int64   `json:"total_tokens"`
	CachedTokens     int64   `json:"cached_tokens"`
	Cost             float64 `json:"cost"`
	// SavedTokens and SavedCost sum what cache hits saved.
	SavedTokens int64   `json:"saved_tokens"`
	SavedCost   float64 `json:"saved_cost"`
}

// ErrUnknownGroup is returned by Report for a GroupBy key it does not know.
var ErrUnknownGroup = errors.New("unknown group")

// groups lists the GroupBy keys with their column or, for time groups, nil.
var groups = map[string]string{
	"subscription": "subscription",
	"product":      "product",
	"model":        "model",
	"deployment":   "deployment",
	"backend":      "backend",
	"region":       "region",
	"currency":     "currency",
	"user":         "user_id",
	"app":          "app_id",
	"cache":        "cache",
	"day":          "",
	"hour":         "",
	"month":        "",
}

// checkGroups rejects unknown and repeated GroupBy keys.
func checkGroups(keys []string) error {
	for i, k := range keys {
		if _, ok := groups[k]; !ok {
			return fmt.Errorf("%w %q; want subscription, product, model, deployment, backend, region, currency, user, app, cache, day, hour or month", ErrUnknownGroup, k)
		}
		if slices.Contains(keys[:i], k) {
			return fmt.Errorf("group %q given twice", k)
		}
	}
	return nil
}

// Open opens the store a DSN names, "sqlite:PATH" or a PostgreSQL URL
// ("postgres://" or "postgresql://"), and brings its schema up to date.
// SQLite fails here when the file cannot be opened, a configuration error.
// PostgreSQL fails here only when the URL does not parse: a server that does
// not answer yet gets its schema brought up to date on the first call that
// reaches it, so that a gateway starts, and journals its records, while its
// database is down.
func Open(ctx context.Context, dsn string) (Store, error) {
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		return openSQLite(ctx, strings.TrimPrefix(dsn, "sqlite:"))
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return openPostgres(ctx, dsn)
	}
	return nil, errors.New(`usage: store dsn must start with "sqlite:", "postgres://" or "postgresql://"`)
}

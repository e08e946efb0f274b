package usage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// StoredSubscription is a subscription created at run time (the admin API),
// kept in the usage store so that every instance sharing the store serves
// it. Its keys are kept as SHA-256 hex digests and their last four
// characters only.
type StoredSubscription struct {
	Name            string    `json:"name"`
	Product         string    `json:"product"`
	Principals      []string  `json:"principals,omitempty"`
	State           string    `json:"state"` // active or suspended
	ExpiresAt       time.Time `json:"expires_at,omitzero"`
	PrimaryDigest   string    `json:"-"`
	SecondaryDigest string    `json:"-"`
	PrimaryLast4    string    `json:"primary_key_last4"`
	SecondaryLast4  string    `json:"secondary_key_last4"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
}

// AuditEntry is one change to the runtime subscriptions.
type AuditEntry struct {
	ID           int64     `json:"id"`
	Time         time.Time `json:"time"`
	Actor        string    `json:"actor"`
	Action       string    `json:"action"`
	Subscription string    `json:"subscription"`
	Detail       string    `json:"detail,omitempty"`
}

// Subscriptions keeps runtime subscriptions; both stores implement it. Every
// change writes an audit entry in the same transaction, and Version (the
// newest entry's id) tells a poller that something changed.
type Subscriptions interface {
	ListSubscriptions(ctx context.Context) ([]StoredSubscription, error)
	// CreateSubscription fails with ErrExists for a name or key digest
	// already stored.
	CreateSubscription(ctx context.Context, s StoredSubscription, actor string) error
	// UpdateSubscription applies change to the stored subscription (not
	// found: ErrNotFound) and audits action.
	UpdateSubscription(ctx context.Context, name, actor, action string, change func(*StoredSubscription) error) (StoredSubscription, error)
	DeleteSubscription(ctx context.Context, name, actor string) error
	SubscriptionsVersion(ctx context.Context) (int64, error)
	SubscriptionAudit(ctx context.Context, limit int) ([]AuditEntry, error)
}

// Errors of Subscriptions.
var (
	ErrExists   = errors.New("usage: subscription exists")
	ErrNotFound = errors.New("usage: no such subscription")
)

// subStore implements Subscriptions over database/sql, for both stores:
// queries are written with ? and numbered for PostgreSQL.
type subStore struct {
	db *sql.DB
	pg bool
}

func (s *sqliteStore) subs() subStore   { return subStore{db: s.w} }
func (s *postgresStore) subs() subStore { return subStore{db: s.sqldb, pg: true} }

func (st subStore) q(query string) string {
	if !st.pg {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

const subColumns = "name, product, principals, state, expires_at, primary_digest, secondary_digest, primary_last4, secondary_last4, created_at, updated_at"

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

type scanner interface{ Scan(dest ...any) error }

func scanSub(r scanner) (StoredSubscription, error) {
	var s StoredSubscription
	var principals, exp, created, updated string
	err := r.Scan(&s.Name, &s.Product, &principals, &s.State, &exp, &s.PrimaryDigest, &s.SecondaryDigest,
		&s.PrimaryLast4, &s.SecondaryLast4, &created, &updated)
	if err != nil {
		return s, err
	}
	_ = json.Unmarshal([]byte(principals), &s.Principals)
	s.ExpiresAt, s.CreatedAt, s.UpdatedAt = parseTime(exp), parseTime(created), parseTime(updated)
	return s, nil
}

func (st subStore) list(ctx context.Context) ([]StoredSubscription, error) {
	rows, err := st.db.QueryContext(ctx, "SELECT "+subColumns+" FROM subscriptions ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("usage: subscriptions: %w", err)
	}
	defer rows.Close()
	var out []StoredSubscription
	for rows.Next() {
		s, err := scanSub(rows)
		if err != nil {
			return nil, fmt.Errorf("usage: subscriptions: %w", err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

func (st subStore) audit(ctx context.Context, tx *sql.Tx, actor, action, name, detail string) error {
	_, err := tx.ExecContext(ctx, st.q("INSERT INTO subscription_audit (time, actor, action, subscription, detail) VALUES (?, ?, ?, ?, ?)"),
		fmtTime(time.Now()), actor, action, name, detail)
	return err
}

func (st subStore) args(s StoredSubscription) []any {
	p, _ := json.Marshal(s.Principals)
	if s.Principals == nil {
		p = []byte("[]")
	}
	return []any{s.Name, s.Product, string(p), s.State, fmtTime(s.ExpiresAt), s.PrimaryDigest, s.SecondaryDigest,
		s.PrimaryLast4, s.SecondaryLast4, fmtTime(s.CreatedAt), fmtTime(s.UpdatedAt)}
}

func (st subStore) create(ctx context.Context, s StoredSubscription, actor string) error {
	tx, err := st.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("usage: subscriptions: %w", err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, st.q("SELECT count(*) FROM subscriptions WHERE name = ? OR primary_digest IN (?, ?) OR secondary_digest IN (?, ?)"),
		s.Name, s.PrimaryDigest, s.SecondaryDigest, s.PrimaryDigest, s.SecondaryDigest).Scan(&n); err != nil {
		return fmt.Errorf("usage: subscriptions: %w", err)
	}
	if n > 0 {
		return ErrExists
	}
	if _, err := tx.ExecContext(ctx, st.q("INSERT INTO subscriptions ("+subColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"), st.args(s)...); err != nil {
		return fmt.Errorf("usage: subscriptions: %w", err)
	}
	if err := st.audit(ctx, tx, actor, "create", s.Name, "product="+s.Product); err != nil {
		return fmt.Errorf("usage: subscriptions: %w", err)
	}
	return tx.Commit()
}

func (st subStore) update(ctx context.Context, name, actor, action string, change func(*StoredSubscription) error) (StoredSubscription, error) {
	tx, err := st.db.BeginTx(ctx, nil)
	if err != nil {
		return StoredSubscription{}, fmt.Errorf("usage: subscriptions: %w", err)
	}
	defer tx.Rollback()
	lock := ""
	if st.pg {
		lock = " FOR UPDATE"
	}
	s, err := scanSub(tx.QueryRowContext(ctx, st.q("SELECT "+subColumns+" FROM subscriptions WHERE name = ?"+lock), name))
	if errors.Is(err, sql.ErrNoRows) {
		return s, ErrNotFound
	}
	if err != nil {
		return s, fmt.Errorf("usage: subscriptions: %w", err)
	}
	if err := change(&s); err != nil {
		return s, err
	}
	s.UpdatedAt = time.Now().UTC()
	args := append(st.args(s)[1:], name)
	if _, err := tx.ExecContext(ctx, st.q(`UPDATE subscriptions SET product = ?, principals = ?, state = ?, expires_at = ?,
		primary_digest = ?, secondary_digest = ?, primary_last4 = ?, secondary_last4 = ?, created_at = ?, updated_at = ? WHERE name = ?`), args...); err != nil {
		return s, fmt.Errorf("usage: subscriptions: %w", err)
	}
	if err := st.audit(ctx, tx, actor, action, name, ""); err != nil {
		return s, fmt.Errorf("usage: subscriptions: %w", err)
	}
	return s, tx.Commit()
}

func (st subStore) delete(ctx context.Context, name, actor string) error {
	tx, err := st.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("usage: subscriptions: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, st.q("DELETE FROM subscriptions WHERE name = ?"), name)
	if err != nil {
		return fmt.Errorf("usage: subscriptions: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	if err := st.audit(ctx, tx, actor, "delete", name, ""); err != nil {
		return fmt.Errorf("usage: subscriptions: %w", err)
	}
	return tx.Commit()
}

func (st subStore) version(ctx context.Context) (int64, error) {
	var v int64
	if err := st.db.QueryRowContext(ctx, "SELECT coalesce(max(id), 0) FROM subscription_audit").Scan(&v); err != nil {
		return 0, fmt.Errorf("usage: subscriptions: %w", err)
	}
	return v, nil
}

func (st subStore) auditLog(ctx context.Context, limit int) ([]AuditEntry, error) {
	rows, err := st.db.QueryContext(ctx, st.q("SELECT id, time, actor, action, subscription, detail FROM subscription_audit ORDER BY id DESC LIMIT ?"), limit)
	if err != nil {
		return nil, fmt.Errorf("usage: subscriptions: %w", err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var t string
		if err := rows.Scan(&e.ID, &t, &e.Actor, &e.Action, &e.Subscription, &e.Detail); err != nil {
			return nil, err
		}
		e.Time = parseTime(t)
		out = append(out, e)
	}
	return out, rows.Err()
}

// The stores' Subscriptions methods.

func (s *sqliteStore) ListSubscriptions(ctx context.Context) ([]StoredSubscription, error) {
	return s.subs().list(ctx)
}
func (s *sqliteStore) CreateSubscription(ctx context.Context, sub StoredSubscription, actor string) error {
	return s.subs().create(ctx, sub, actor)
}
func (s *sqliteStore) UpdateSubscription(ctx context.Context, name, actor, action string, change func(*StoredSubscription) error) (StoredSubscription, error) {
	return s.subs().update(ctx, name, actor, action, change)
}
func (s *sqliteStore) DeleteSubscription(ctx context.Context, name, actor string) error {
	return s.subs().delete(ctx, name, actor)
}
func (s *sqliteStore) SubscriptionsVersion(ctx context.Context) (int64, error) {
	return s.subs().version(ctx)
}
func (s *sqliteStore) SubscriptionAudit(ctx context.Context, limit int) ([]AuditEntry, error) {
	return s.subs().auditLog(ctx, limit)
}

func (s *postgresStore) pgReady(ctx context.Context) error { return s.schema(ctx) }

func (s *postgresStore) ListSubscriptions(ctx context.Context) ([]StoredSubscription, error) {
	if err := s.pgReady(ctx); err != nil {
		return nil, err
	}
	return s.subs().list(ctx)
}
func (s *postgresStore) CreateSubscription(ctx context.Context, sub StoredSubscription, actor string) error {
	if err := s.pgReady(ctx); err != nil {
		return err
	}
	return s.subs().create(ctx, sub, actor)
}
func (s *postgresStore) UpdateSubscription(ctx context.Context, name, actor, action string, change func(*StoredSubscription) error) (StoredSubscription, error) {
	if err := s.pgReady(ctx); err != nil {
		return StoredSubscription{}, err
	}
	return s.subs().update(ctx, name, actor, action, change)
}
func (s *postgresStore) DeleteSubscription(ctx context.Context, name, actor string) error {
	if err := s.pgReady(ctx); err != nil {
		return err
	}
	return s.subs().delete(ctx, name, actor)
}
func (s *postgresStore) SubscriptionsVersion(ctx context.Context) (int64, error) {
	if err := s.pgReady(ctx); err != nil {
		return 0, err
	}
	return s.subs().version(ctx)
}
func (s *postgresStore) SubscriptionAudit(ctx context.Context, limit int) ([]AuditEntry, error) {
	if err := s.pgReady(ctx); err != nil {
		return nil, err
	}
	return s.subs().auditLog(ctx, limit)
}

var (
	_ Subscriptions = (*sqliteStore)(nil)
	_ Subscriptions = (*postgresStore)(nil)
)

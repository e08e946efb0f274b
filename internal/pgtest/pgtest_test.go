package pgtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	s := Start(t)
	if !strings.HasPrefix(s.URL(), "postgres://postgres@127.0.0.1:") || !strings.Contains(s.URL(), "/"+Database+"?") {
		t.Errorf("URL() = %q; want postgres://postgres@127.0.0.1:port/%s?...", s.URL(), Database)
	}
	exec := func(sql string) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, s.URL())
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := exec("CREATE TABLE t (v int); INSERT INTO t VALUES (1)"); err != nil {
		t.Fatalf("create table: %v", err)
	}

	s.Stop()
	if err := exec("SELECT 1"); err == nil {
		t.Errorf("query after Stop succeeded; want connection refused")
	}
	s.Stop() // a second Stop does nothing

	s.Restart()
	conn, err := pgx.Connect(ctx, s.URL())
	if err != nil {
		t.Fatalf("connect after Restart: %v", err)
	}
	defer conn.Close(ctx)
	var v int
	if err := conn.QueryRow(ctx, "SELECT v FROM t").Scan(&v); err != nil || v != 1 {
		t.Errorf("SELECT v after Restart = %d, %v; want 1 (the data is kept)", v, err)
	}

	// Restart of a running server disconnects its clients and comes back.
	s.Restart()
	if err := conn.Ping(ctx); err == nil {
		t.Errorf("a connection from before Restart still works; want it closed")
	}
	if err := exec("SELECT 1"); err != nil {
		t.Errorf("query after second Restart: %v", err)
	}
}

func TestServersAreIndependent(t *testing.T) {
	a, b := Start(t), Start(t)
	if a.URL() == b.URL() {
		t.Fatalf("two servers share %s", a.URL())
	}
	a.Stop()
	conn, err := pgx.Connect(context.Background(), b.URL())
	if err != nil {
		t.Fatalf("b after a.Stop: %v", err)
	}
	conn.Close(context.Background())
}

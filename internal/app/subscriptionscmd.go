package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

const subscriptionsUsage = `Usage:
  sluice subscriptions [flags] list
  sluice subscriptions [flags] create NAME PRODUCT [PRINCIPAL...]
  sluice subscriptions [flags] regenerate NAME primary|secondary
  sluice subscriptions [flags] suspend NAME
  sluice subscriptions [flags] activate NAME

Manages the subscriptions kept in the usage store through a gateway's admin
API. The admin key comes from --key or $SLUICE_ADMIN_KEY. Keys are printed
once, by create and regenerate.
`

// subscriptionsCmd is "sluice subscriptions": the admin API's subscriptions
// from the command line.
func subscriptionsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("subscriptions", stderr)
	admin := fs.String("admin", "http://127.0.0.1:8081", "the gateway's admin URL")
	key := fs.String("key", "", "the admin key (default $SLUICE_ADMIN_KEY)")
	fs.Usage = func() { fmt.Fprint(stderr, subscriptionsUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return &ExitError{Code: 2}
	}
	if *key == "" {
		*key = os.Getenv("SLUICE_ADMIN_KEY")
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return &ExitError{Code: 2}
	}
	var method, path string
	var body any
	switch verb := rest[0]; {
	case verb == "list" && len(rest) == 1:
		method, path = "GET", "/admin/subscriptions"
	case verb == "create" && len(rest) >= 3:
		method, path = "POST", "/admin/subscriptions"
		body = map[string]any{"name": rest[1], "product": rest[2], "principals": rest[3:]}
	case verb == "regenerate" && len(rest) == 3:
		method, path = "POST", "/admin/subscriptions/"+rest[1]+"/regenerate"
		body = map[string]string{"key": rest[2]}
	case (verb == "suspend" || verb == "activate") && len(rest) == 2:
		state := map[string]string{"suspend": "suspended", "activate": "active"}[verb]
		method, path, body = "PATCH", "/admin/subscriptions/"+rest[1], map[string]string{"state": state}
	default:
		fs.Usage()
		return &ExitError{Code: 2}
	}
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(*admin, "/")+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Api-Key", *key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "sluice subscriptions:", err)
		return &ExitError{Code: 1}
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if resp.StatusCode >= 300 {
		fmt.Fprintf(stderr, "sluice subscriptions: %s\n%s", resp.Status, data)
		return &ExitError{Code: 1}
	}
	_, _ = stdout.Write(data)
	return nil
}

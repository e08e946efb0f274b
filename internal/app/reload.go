package app

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/sluice-gateway/sluice/internal/config"
)

// restartOnly are the config fields a running gateway cannot change: what
// they configure is built once at start (listeners and their servers, the
// usage ledger and its store, the metrics registry, the trace exporter, the
// response cache's store). A
// reload that changes one is refused, naming it, so that nobody believes a
// change applied that did not; docs/configuration.md lists the same fields.
var restartOnly = []struct {
	path string
	get  func(*config.Config) any
}{
	{"server.listen", func(c *config.Config) any { return c.Server.Listen }},
	{"server.read_header_timeout", func(c *config.Config) any { return c.Server.ReadHeaderTimeout }},
	{"server.max_connections", func(c *config.Config) any { return c.Server.MaxConnections }},
	{"server.max_connections_per_ip", func(c *config.Config) any { return c.Server.MaxConnectionsPerIP }},
	{"server.tls", func(c *config.Config) any { return c.Server.TLS }},
	{"admin.listen", func(c *config.Config) any { return c.Admin.Listen }},
	{"admin.tls", func(c *config.Config) any { return c.Admin.TLS }},
	{"usage.store", func(c *config.Config) any { return c.Usage.Store }},
	{"usage.journal", func(c *config.Config) any { return c.Usage.Journal }},
	{"metrics", func(c *config.Config) any { return c.Metrics }},
	{"tracing", func(c *config.Config) any { return c.Tracing }},
	{"cache", func(c *config.Config) any { return c.Cache }},
}

// RestartError is a reload refused because it changes fields that take
// effect only on restart.
type RestartError struct {
	// Fields are the changed fields' paths.
	Fields []string
}

func (e *RestartError) Error() string {
	return fmt.Sprintf("config reload refused: %s changed, which takes effect only on restart; restart Sluice to apply it, or change it back to reload the rest",
		strings.Join(e.Fields, ", "))
}

// checkRestartOnly returns a RestartError when next changes a field of
// restartOnly from prev, and nil otherwise.
func checkRestartOnly(prev, next *config.Config) error {
	var changed []string
	for _, f := range restartOnly {
		if !reflect.DeepEqual(f.get(prev), f.get(next)) {
			changed = append(changed, f.path)
		}
	}
	if len(changed) > 0 {
		return &RestartError{Fields: changed}
	}
	return nil
}

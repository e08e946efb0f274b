package config

import (
	"os"
	"reflect"
	"regexp"
	"sort"
	"testing"
	"time"
)

// docsPath is the user documentation of the configuration file.
const docsPath = "../../docs/configuration.md"

// mapKeys names the key of each map field in the documentation.
var mapKeys = map[string]string{
	"usage.prices.models":                  "<model>",
	"backends[].deployments":               "<model>",
	"models":                               "<model>",
	"tracing.headers":                      "<header>",
	"products[].content_safety.categories": "<category>",
}

// fieldPaths lists the documentation path of every field under t: a.b for
// fields, a[].b inside list elements, a.<model> for map entries.
func fieldPaths(t *testing.T, typ reflect.Type, prefix string) []string {
	var out []string
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	fields := yamlFields(typ)
	for _, name := range fields.names {
		path := field(prefix, name)
		out = append(out, path)
		ft := fields.types[name]
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if reflect.PointerTo(ft).Implements(unmarshalerType) {
			continue // a single value such as a Duration or a secret
		}
		switch ft.Kind() {
		case reflect.Struct:
			out = append(out, fieldPaths(t, ft, path)...)
		case reflect.Slice:
			if elem := ft.Elem(); elem.Kind() == reflect.Struct && !reflect.PointerTo(elem).Implements(unmarshalerType) {
				out = append(out, fieldPaths(t, elem, path+"[]")...)
			}
		case reflect.Map:
			k, ok := mapKeys[path]
			if !ok {
				t.Errorf("map field %s has no entry in mapKeys; add the name its keys are documented by", path)
				continue
			}
			out = append(out, path+"."+k)
			if elem := ft.Elem(); elem.Kind() == reflect.Struct {
				out = append(out, fieldPaths(t, elem, path+"."+k)...)
			}
		}
	}
	return out
}

// TestDocsCoverEveryField fails when a configuration field is not documented
// in docs/configuration.md as a backticked path such as
// `backends[].circuit_breaker.failures`.
func TestDocsCoverEveryField(t *testing.T) {
	doc, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("`([^`\n]+)`").FindAllStringSubmatch(string(doc), -1) {
		documented[m[1]] = true
	}
	paths := fieldPaths(t, reflect.TypeFor[Config](), "")
	if len(paths) < 70 {
		t.Fatalf("found only %d field paths; the walk is broken", len(paths))
	}
	var missing []string
	for _, p := range paths {
		if !documented[p] {
			missing = append(missing, p)
		}
	}
	sort.Strings(missing)
	for _, p := range missing {
		t.Errorf("field `%s` is not documented in %s", p, docsPath)
	}
}

// limitsPath is the page on limits, quotas and priorities.
const limitsPath = "../../docs/limits.md"

// TestLimitsExampleParses fails when the worked example of docs/limits.md is
// not a valid configuration, or no longer sets what its text describes.
func TestLimitsExampleParses(t *testing.T) {
	doc, err := os.ReadFile(limitsPath)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)## Worked example\n+```yaml\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatalf("no yaml block under ## Worked example in %s", limitsPath)
	}
	env := envFrom(map[string]string{"PTU_KEY": "p", "PAYG_KEY": "q", "WEB_APP_KEY": "w", "JOBS_KEY": "j"})
	cfg, err := Parse("limits.md", m[1], env)
	if err != nil {
		t.Fatalf("the worked example does not parse:\n%v", err)
	}
	interactive, batch := cfg.Products[0], cfg.Products[1]
	adaptive := interactive.Limits[1]
	checks := []struct {
		what      string
		got, want any
	}{
		{"state.store", cfg.State.Store, "redis://redis:6379/0"},
		{"state.timeout", cfg.State.Timeout.D(), 50 * time.Millisecond},
		{"throttle floor", cfg.Pools[0].Throttle.MinRemainingTokens, int64(20000)},
		{"throttle max_wait", cfg.Pools[0].Throttle.MaxWait.D(), 5 * time.Second},
		{"interactive priority", interactive.Priority, "high"},
		{"adaptive share", adaptive.AdaptiveShare, 0.1},
		{"adaptive default_max_tokens", adaptive.DefaultMaxTokens, int64(512)},
		{"batch priority", batch.Priority, "low"},
		{"batch remaining tokens header", batch.Headers.RemainingTokens, "x-apim-remaining-tokens"},
		{"batch remaining requests header", batch.Headers.RemainingRequests, "x-ratelimit-remaining-requests"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v; want %v", c.what, c.got, c.want)
		}
	}
}

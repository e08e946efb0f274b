package metrics

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// docPath is the user documentation of the metrics.
const docPath = "../../docs/metrics.md"

// everything returns metrics with every source set and every kind of series
// written, so that Gather returns every family the package can export.
func everything() *Metrics {
	m := New(Options{
		Dimensions: all,
		Backends:   func() []BackendState { return []BackendState{{Name: "b", Breaker: "closed", TokenCredential: true}} },
		Tokens: func() []TokenProviderStats {
			return []TokenProviderStats{{Name: "entra", Results: map[string]uint64{"accepted": 1}}}
		},
		LimitStoreErrors: func() uint64 { return 0 },
		Ledger:           func() LedgerStats { return LedgerStats{} },
		Connections:      func() ConnectionStats { return ConnectionStats{} },
		Limits:           func() LimitStats { return LimitStats{} },
		Guard: func() GuardStats {
			return GuardStats{Checks: []GuardCount{{"p", "prompt", "pass", 1}}, Errors: []GuardCount{{"p", "prompt", "fail_open", 1}},
				Masked: []GuardCount{{"p", "Email", "", 1}}, Durations: []GuardDuration{{"prompt", 1, 0.001}}}
		},
	})
	m.Observe(streamed())
	m.Observe(&Request{Operation: "chat", Status: 429, LimitRejection: "quota", Duration: time.Millisecond})
	m.QuotaRemaining("team-a", 1)
	return m
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

// TestDocsListEveryMetric fails when a metric the registry can export is
// missing from docs/metrics.md, when its row there lacks one of its labels,
// or when the doc's tables list a metric that no longer exists.
func TestDocsListEveryMetric(t *testing.T) {
	raw, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	// rows maps a metric name to its table row ("| `name` | ...").
	rows := map[string]string{}
	for line := range strings.SplitSeq(doc, "\n") {
		if rest, ok := strings.CutPrefix(line, "| `"); ok {
			if name, _, ok := strings.Cut(rest, "`"); ok {
				rows[name] = line
			}
		}
	}

	m := everything()
	// Every family Gather returns, with the labels of its series.
	labels := map[string][]string{}
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		var names []string
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if !slices.Contains(names, l.GetName()) {
					names = append(names, l.GetName())
				}
			}
		}
		labels[f.GetName()] = names
	}
	// And every family a collector describes, series or not.
	descs := make(chan *prometheus.Desc)
	go func() { m.Registry().Describe(descs); close(descs) }()
	for d := range descs {
		match := fqName.FindStringSubmatch(d.String())
		if match == nil {
			t.Fatalf("cannot read the name of %s", d)
		}
		if _, ok := labels[match[1]]; !ok {
			labels[match[1]] = nil
		}
	}
	if len(labels) < 40 {
		t.Fatalf("found %d metric names; want the package's and the Go and process collectors'", len(labels))
	}

	for name, ls := range labels {
		row, ok := rows[name]
		if !ok {
			t.Errorf("%s: metric %s is exported but has no table row \"| `%s` |\"", docPath, name, name)
			continue
		}
		for _, l := range ls {
			if slices.Contains(dimLabels, l) && strings.Contains(row, "(#dimensions)") {
				continue // the row links to the dimension labels
			}
			if !strings.Contains(row, "`"+l+"`") {
				t.Errorf("%s: the row of %s does not name its label `%s`", docPath, name, l)
			}
		}
	}
	for name := range rows {
		if strings.HasPrefix(name, "sluice_cache_") {
			continue // registered by package cachestage, which checks its own rows
		}
		if _, ok := labels[name]; !ok && (strings.HasPrefix(name, "sluice_") || strings.HasPrefix(name, "gen_ai_")) {
			t.Errorf("%s: lists %s, which the registry does not export", docPath, name)
		}
	}
}

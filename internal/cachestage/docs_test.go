package cachestage

import (
	"os"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sluice-gateway/sluice/internal/cache"
)

// TestDocsListEveryMetric fails when a metric of the cache is missing from
// docs/metrics.md.
func TestDocsListEveryMetric(t *testing.T) {
	doc, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, cache.NewMemory(0, nil))
	m.lookup("exact", Miss)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if !strings.Contains(string(doc), "`"+f.GetName()+"`") {
			t.Errorf("metric %s is not in docs/metrics.md", f.GetName())
		}
	}
	if len(fams) < 10 {
		t.Errorf("%d metric families gathered; want the 10 of the cache", len(fams))
	}
}

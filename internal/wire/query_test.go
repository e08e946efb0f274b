package wire

import (
	"net/url"
	"testing"
)

// TestQueryValue holds QueryValue to what url.ParseQuery and Get read.
func TestQueryValue(t *testing.T) {
	for _, q := range []string{
		"",
		"api-version=2024-10-21",
		"a=1&api-version=2024%2D10-21&api-version=2",
		"api%2Dversion=escaped-key",
		"api-version",
		"api-version=&api-version=second",
		"api-version=%zz&api-version=after-a-bad-escape",
		"x=%zz&api-version=after-a-bad-key",
		"api-version=a;b&api-version=c",
		"&&api-version=a+b",
		"api-version=a=b",
		"other=1",
	} {
		values, _ := url.ParseQuery(q)
		if got, want := QueryValue(q, "api-version"), values.Get("api-version"); got != want {
			t.Errorf("QueryValue(%q) = %q; want %q", q, got, want)
		}
	}
}

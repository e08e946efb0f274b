package proxy

import (
	"net/http/httptest"
	"testing"
)

// TestAPIVersion holds apiVersion to what r.URL.Query().Get reads.
func TestAPIVersion(t *testing.T) {
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
		r := httptest.NewRequest("POST", "/v1/chat/completions?"+q, nil)
		if got, want := apiVersion(r), r.URL.Query().Get("api-version"); got != want {
			t.Errorf("apiVersion(%q) = %q; want %q", q, got, want)
		}
	}
}

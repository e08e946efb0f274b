package simulator

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const testKey = "test-key-3f9a"

// serve starts a Simulator behind a real HTTP server.
func serve(t testing.TB, opts Options) (*Simulator, *httptest.Server) {
	t.Helper()
	s := New(opts)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

// post sends body to srv with the test key and returns the response with its
// body read.
func post(t testing.TB, srv *httptest.Server, path, body string) (*http.Response, []byte) {
	t.Helper()
	return do(t, srv, http.MethodPost, path, body, map[string]string{"api-key": testKey})
}

func do(t testing.TB, srv *httptest.Server, method, path, body string, headers map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp, b
}

// decode unmarshals b into a generic map, failing the test if it is not JSON.
func decode(t testing.TB, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("body is not a JSON object: %v\n%s", err, b)
	}
	return m
}

// event is one Server-Sent Event.
type event struct {
	name string // from "event:", empty for data-only events
	data string
}

// readEvents reads SSE events until the body ends, returning them and the
// error that ended the body (nil for a clean end).
func readEvents(body io.Reader) ([]event, error) {
	var (
		events []event
		cur    event
	)
	r := bufio.NewReader(body)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			if err == io.EOF && line == "" {
				return events, nil
			}
			return events, err
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			events = append(events, cur)
			cur = event{}
		case strings.HasPrefix(line, "event: "):
			cur.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			cur.data = strings.TrimPrefix(line, "data: ")
		default:
			return events, &badLine{line}
		}
	}
}

type badLine struct{ line string }

func (e *badLine) Error() string { return "not an SSE line: " + e.line }

// path reads a value out of decoded JSON: path elements are map keys or, for
// arrays, ints.
func path(v any, elems ...any) any {
	for _, e := range elems {
		switch k := e.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			a, ok := v.([]any)
			if !ok || k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

// num reads a JSON number out of decoded JSON as an int.
func num(v any, elems ...any) int {
	f, _ := path(v, elems...).(float64)
	return int(f)
}

func str(v any, elems ...any) string {
	s, _ := path(v, elems...).(string)
	return s
}

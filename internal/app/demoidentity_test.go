package app

import (
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// TestDemoManagedIdentity: the demo's payg-westeurope is reached with the
// simulated managed identity, its banner says so, its requests are served
// through it, and the process's IDENTITY_ENDPOINT is put back afterwards.
func TestDemoManagedIdentity(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	t.Setenv("IDENTITY_ENDPOINT", "http://before.invalid/msi/token")
	// Registered before startDemo's, so it runs after the demo stopped.
	t.Cleanup(func() {
		if got := os.Getenv("IDENTITY_ENDPOINT"); got != "http://before.invalid/msi/token" {
			t.Errorf("IDENTITY_ENDPOINT = %q after the demo; want the value from before", got)
		}
	})
	d := startDemo(t, "demo", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--latency=false", "--load", "0")
	line := bannerField(t, d.banner, `(backend\s+payg-westeurope .*)`)
	if !strings.Contains(line, "managed identity: tokens from http://127.0.0.1:") || !strings.Contains(line, "keys refused") {
		t.Errorf("payg-westeurope's banner line does not tell of the managed identity: %s", line)
	}
	gw := bannerField(t, d.banner, `gateway\s+(\S+)`)
	key := bannerField(t, d.banner, `Your key: (\S+)`)
	byBackend := map[string]int{}
	// Embeddings go to payg-westeurope and payg-francecentral in turn;
	// until westeurope's first token has come (a busy machine may take a
	// moment), francecentral serves them all. Every request is served.
	for deadline := time.Now().Add(time.Minute); byBackend[demoIdentityBackend] == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("served by %v for a minute; want payg-westeurope among them, through its managed identity", byBackend)
		}
		req, _ := http.NewRequest(http.MethodPost, gw+"/v1/embeddings",
			strings.NewReader(`{"model":"text-embedding-3-small","input":"rivers"}`))
		req.Header.Set("api-key", key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("embeddings: %d from %s", resp.StatusCode, resp.Header.Get("X-Sluice-Backend"))
		}
		byBackend[resp.Header.Get("X-Sluice-Backend")]++
		time.Sleep(20 * time.Millisecond)
	}
	if got := os.Getenv("IDENTITY_ENDPOINT"); !strings.HasPrefix(got, "http://127.0.0.1:") {
		t.Errorf("IDENTITY_ENDPOINT = %q while the demo runs; want its simulated endpoint", got)
	}
}

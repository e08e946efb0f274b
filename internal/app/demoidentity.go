package app

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/sluice-gateway/sluice/internal/config"
	"github.com/sluice-gateway/sluice/internal/simulator"
)

// demoIdentityBackend is the demo's backend reached with a managed identity
// rather than a key: its simulator is in Entra mode with key authentication
// disabled, as an Azure OpenAI account reached by managed identity is, and
// the gateway gets its tokens from a simulated App Service identity endpoint
// through azidentity, as on Azure.
const (
	demoIdentityBackend = "payg-westeurope"
	demoIdentityAddr    = "127.0.0.1:9104"
)

// demoTokenLifetime is the lifetime of the demo identity's tokens: under
// the 5 minutes before expiry within which MSAL (beneath azidentity) no
// longer serves a token from its managed identity cache, which is one for
// the whole process. A longer-lived token of an earlier demo in the same
// process (the tests run several) would otherwise be served again, signed
// with a key the new demo's simulator does not know. It also shows the
// gateway's background refreshes, every 2 minutes.
const demoTokenLifetime = 4 * time.Minute

// demoIdentity is the demo's simulated managed identity, served until the
// demo stops.
type demoIdentity struct {
	id      *simulator.Identity
	url     string
	restore func() // puts IDENTITY_ENDPOINT and IDENTITY_HEADER back
}

// startDemoIdentity serves a simulated identity until ctx ends (wg waits for
// it) and points this process's azidentity at it with IDENTITY_ENDPOINT and
// IDENTITY_HEADER, as App Service does; restore undoes that.
func startDemoIdentity(ctx context.Context, wg *sync.WaitGroup, errc chan<- error) (*demoIdentity, error) {
	id, err := simulator.NewIdentity(demoTokenLifetime)
	if err != nil {
		return nil, fmt.Errorf("demo identity: %w", err)
	}
	ln, err := listenOr(demoIdentityAddr)
	if err != nil {
		return nil, fmt.Errorf("demo identity: %w", err)
	}
	d := &demoIdentity{id: id, url: "http://" + ln.Addr().String()}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := serveUntil(ctx, ln, id); err != nil {
			errc <- fmt.Errorf("demo identity: %w", err)
		}
	}()
	d.restore = setEnv(map[string]string{"IDENTITY_ENDPOINT": d.url + "/msi/token", "IDENTITY_HEADER": id.Header})
	return d, nil
}

// setEnv sets vars in the process's environment and returns what puts the
// previous values back.
func setEnv(vars map[string]string) (restore func()) {
	type prev struct {
		v  string
		ok bool
	}
	old := map[string]prev{}
	for k, v := range vars {
		pv, ok := os.LookupEnv(k)
		old[k] = prev{pv, ok}
		_ = os.Setenv(k, v)
	}
	return func() {
		for k, p := range old {
			if p.ok {
				_ = os.Setenv(k, p.v)
			} else {
				_ = os.Unsetenv(k)
			}
		}
	}
}

// useDemoIdentity makes the demo config reach demoIdentityBackend with the
// managed identity instead of its key.
func useDemoIdentity(cfg *config.Config) {
	for i := range cfg.Backends {
		if cfg.Backends[i].Name == demoIdentityBackend {
			cfg.Backends[i].Auth = config.BackendAuth{ManagedIdentity: &config.ManagedIdentity{Resource: simulator.CognitiveServices}}
		}
	}
}

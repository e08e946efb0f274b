package credential

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/sluice-gateway/sluice/internal/config"
)

// FromConfig returns the Source of a backend's auth, or nil for a static
// api_key. client, when not nil, makes the token requests (a test's
// transport); the sources never retry on their own: the Cache does.
func FromConfig(a config.BackendAuth, client *http.Client) (Source, error) {
	opts := azcore.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1, TryTimeout: 20 * time.Second}}
	if client != nil {
		opts.Transport = client
	}
	switch {
	case a.ManagedIdentity != nil:
		mo := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: opts}
		if id := a.ManagedIdentity.ClientID; id != "" {
			mo.ID = azidentity.ClientID(id)
		}
		cred, err := azidentity.NewManagedIdentityCredential(mo)
		if err != nil {
			return nil, fmt.Errorf("managed identity: %w", err)
		}
		return azureSource{cred: cred, scope: strings.TrimSuffix(a.ManagedIdentity.Resource, "/") + "/.default"}, nil
	case a.ClientCredentials != nil:
		cc := a.ClientCredentials
		opts.Cloud = cloud.Configuration{ActiveDirectoryAuthorityHost: cc.AuthorityHost}
		var cred azcore.TokenCredential
		var err error
		if cc.FederatedTokenFile != "" {
			file := cc.FederatedTokenFile
			cred, err = azidentity.NewClientAssertionCredential(cc.TenantID, cc.ClientID,
				func(context.Context) (string, error) {
					b, err := os.ReadFile(file)
					return strings.TrimSpace(string(b)), err
				}, &azidentity.ClientAssertionCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: true})
		} else {
			cred, err = azidentity.NewClientSecretCredential(cc.TenantID, cc.ClientID, cc.ClientSecret.Reveal(),
				&azidentity.ClientSecretCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: true})
		}
		if err != nil {
			return nil, fmt.Errorf("client credentials: %w", err)
		}
		return azureSource{cred: cred, scope: cc.Scope}, nil
	case a.OAuth2 != nil:
		o := a.OAuth2
		cfg := &clientcredentials.Config{ClientID: o.ClientID, ClientSecret: o.ClientSecret.Reveal(), TokenURL: o.TokenURL,
			Scopes: o.Scopes}
		if client == nil {
			client = &http.Client{Timeout: 20 * time.Second}
		}
		return oauth2Source{cfg: cfg, client: client}, nil
	}
	return nil, nil
}

// azureSource asks an azidentity credential for a token.
type azureSource struct {
	cred  azcore.TokenCredential
	scope string
}

func (s azureSource) Token(ctx context.Context) (Token, error) {
	t, err := s.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{s.scope}})
	if err != nil {
		return Token{}, scrub(err)
	}
	return Token{Value: t.Token, Expiry: t.ExpiresOn}, nil
}

// oauth2Source asks a token endpoint, once per call (clientcredentials'
// Token does not cache).
type oauth2Source struct {
	cfg    *clientcredentials.Config
	client *http.Client
}

func (s oauth2Source) Token(ctx context.Context) (Token, error) {
	t, err := s.cfg.Token(context.WithValue(ctx, oauth2.HTTPClient, s.client))
	if err != nil {
		return Token{}, scrub(err)
	}
	if t.Expiry.IsZero() {
		return Token{}, errors.New("the token endpoint gave no expiry (expires_in)")
	}
	return Token{Value: t.AccessToken, Expiry: t.Expiry}, nil
}

// scrub keeps the first line of a source's error: azidentity's errors go on
// with the response and troubleshooting links.
func scrub(err error) error {
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i > 0 {
		msg = msg[:i]
	}
	return errors.New(msg)
}

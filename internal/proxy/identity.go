package proxy

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/sluice-gateway/sluice/internal/auth"
	"github.com/sluice-gateway/sluice/internal/route"
	"github.com/sluice-gateway/sluice/internal/wire"
)

// An Authenticator names the caller of a request: the subscription it acts
// as, which carries its product. Implementations must be safe for
// concurrent use.
type Authenticator interface {
	// Authenticate returns the caller's subscription in t. It returns
	// ErrNoCredential when the request carries no credential of its kind,
	// so that the next Authenticator is asked; any other error refuses the
	// request, a *wire.Error as it is.
	Authenticate(r *http.Request, t *route.Table) (*route.Subscription, error)
}

// ErrNoCredential is an Authenticator's answer to a request without a
// credential of its kind. It is auth.ErrNoCredential, so that an
// authenticator in a package below proxy can return it.
var ErrNoCredential = auth.ErrNoCredential

// authenticate names the caller with the handler's Authenticators.
func (x *exchange) authenticate() error {
	for _, a := range x.h.authn {
		sub, err := a.Authenticate(x.r, x.table)
		if errors.Is(err, ErrNoCredential) {
			continue
		}
		if err != nil {
			return err
		}
		x.req.Subscription = sub
		return nil
	}
	return wire.NewError(http.StatusUnauthorized, wire.TypeAuthentication, "missing_api_key",
		"No subscription key or token. Send a key in the api-key header, Ocp-Apim-Subscription-Key, or Authorization: Bearer.")
}

// Keys authenticates subscription keys: the key from api-key,
// Ocp-Apim-Subscription-Key, Authorization: Bearer or the query (see
// auth.KeyFromRequest), looked up by its digest in the table.
type Keys struct{}

// Authenticate implements Authenticator.
func (Keys) Authenticate(r *http.Request, t *route.Table) (*route.Subscription, error) {
	key, err := auth.KeyFromRequest(r)
	if errors.Is(err, auth.ErrNoKey) && strings.HasSuffix(r.URL.Path, "/v1/messages") {
		// The Anthropic SDKs send their key in x-api-key: a subscription
		// key on the Anthropic surface only (elsewhere it is a credential
		// meant for someone else, stripped before forwarding).
		if k := r.Header.Get("X-Api-Key"); k != "" {
			key, err = k, nil
		}
	}
	switch {
	case errors.Is(err, auth.ErrNoKey):
		return nil, ErrNoCredential
	case errors.Is(err, auth.ErrConflict):
		return nil, wire.NewError(http.StatusBadRequest, wire.TypeInvalidRequest, "conflicting_credentials",
			"The request carries two different credentials (in api-key, Ocp-Apim-Subscription-Key, Authorization or the query). Send one.")
	case err != nil:
		return nil, err
	}
	sub, ok := t.Subscription(key)
	if !ok {
		return nil, wire.NewError(http.StatusUnauthorized, wire.TypeAuthentication, "invalid_api_key",
			"The subscription key is not valid.")
	}
	if err := sub.Usable(time.Now()); err != nil {
		return nil, err
	}
	// A token would have gone to the token authenticator first: this
	// request carries a key alone.
	if err := sub.Product.Requires(true, false); err != nil {
		return nil, err
	}
	return sub, nil
}

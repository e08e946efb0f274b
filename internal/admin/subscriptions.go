package admin

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/sluice-gateway/sluice/internal/usage"
	"github.com/sluice-gateway/sluice/internal/wire"
)

// subscriptionsAPI serves /admin/subscriptions: runtime subscriptions kept
// in the usage store. Keys are generated here, shown once, and stored as
// digests; the config file's subscriptions are read-only through it.
type subscriptionsAPI struct {
	a     *handler
	store usage.Subscriptions
}

// newKey makes a subscription key: 32 random bytes, hex, with a prefix that
// says what it is (and is never shaped like a JWT).
func newKey() (clear, digest, last4 string) {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	clear = "sk-sluice-" + hex.EncodeToString(b)
	d := sha256.Sum256([]byte(clear))
	return clear, hex.EncodeToString(d[:]), clear[len(clear)-4:]
}

// created is a subscription with its keys in clear, answered once.
type created struct {
	usage.StoredSubscription
	PrimaryKey   string `json:"primary_key,omitempty"`
	SecondaryKey string `json:"secondary_key,omitempty"`
}

func (s *subscriptionsAPI) fail(w http.ResponseWriter, status int, code, msg string) {
	typ := wire.TypeInvalidRequest
	switch status {
	case http.StatusNotFound:
		typ = wire.TypeNotFound
	case http.StatusServiceUnavailable:
		typ = wire.TypeServer
	}
	wire.NewError(status, typ, code, msg).Write(w)
}

// inConfig reports whether name is a subscription of the config file.
func (s *subscriptionsAPI) inConfig(name string) bool {
	for _, sc := range s.a.o.Table().Config.Subscriptions {
		if sc.Name == name {
			return true
		}
	}
	return false
}

func (s *subscriptionsAPI) productExists(name string) bool {
	for _, p := range s.a.o.Table().Config.Products {
		if p.Name == name {
			return true
		}
	}
	return false
}

// changed logs an audited change and tells the gateway at once.
func (s *subscriptionsAPI) changed(r *http.Request, action, name string) {
	s.a.o.Logger.Info("subscription changed", "actor", actor(r), "action", action, "subscription", name)
	if s.a.o.SubscriptionsChanged != nil {
		s.a.o.SubscriptionsChanged()
	}
}

func (s *subscriptionsAPI) list(w http.ResponseWriter, r *http.Request) {
	subs, err := s.store.ListSubscriptions(r.Context())
	if err != nil {
		s.a.o.Logger.Warn("listing subscriptions", "err", err)
		s.fail(w, http.StatusServiceUnavailable, "store_unavailable", "The usage store cannot be read now.")
		return
	}
	if subs == nil {
		subs = []usage.StoredSubscription{}
	}
	var fromFile []map[string]string
	for _, sc := range s.a.o.Table().Config.Subscriptions {
		fromFile = append(fromFile, map[string]string{"name": sc.Name, "product": sc.Product, "source": "config"})
	}
	writeJSON(w, http.StatusOK, map[string]any{"subscriptions": subs, "config_subscriptions": fromFile})
}

type createRequest struct {
	Name       string     `json:"name"`
	Product    string     `json:"product"`
	Principals []string   `json:"principals"`
	ExpiresAt  *time.Time `json:"expires_at"`
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		wire.NewError(http.StatusBadRequest, wire.TypeInvalidRequest, "invalid_body", "The body is not the JSON expected: "+err.Error()).Write(w)
		return false
	}
	return true
}

func (s *subscriptionsAPI) create(w http.ResponseWriter, r *http.Request) {
	var req createRequest
	if !decode(w, r, &req) {
		return
	}
	switch {
	case req.Name == "" || len(req.Name) > 128:
		s.fail(w, http.StatusBadRequest, "invalid_name", "name is required (at most 128 characters).")
		return
	case s.inConfig(req.Name):
		s.fail(w, http.StatusConflict, "subscription_exists", "The config file defines a subscription of that name.")
		return
	case !s.productExists(req.Product):
		s.fail(w, http.StatusBadRequest, "unknown_product", "No product is named "+req.Product+".")
		return
	}
	for _, p := range req.Principals {
		if _, ok := s.a.o.Table().Principal(p); ok {
			s.fail(w, http.StatusConflict, "principal_exists", "The principal "+p+" already acts as another subscription.")
			return
		}
	}
	now := s.a.o.Now().UTC()
	c := created{StoredSubscription: usage.StoredSubscription{Name: req.Name, Product: req.Product, Principals: req.Principals,
		State: "active", CreatedAt: now, UpdatedAt: now}}
	if req.ExpiresAt != nil {
		c.ExpiresAt = req.ExpiresAt.UTC()
	}
	c.PrimaryKey, c.PrimaryDigest, c.PrimaryLast4 = newKey()
	c.SecondaryKey, c.SecondaryDigest, c.SecondaryLast4 = newKey()
	err := s.store.CreateSubscription(r.Context(), c.StoredSubscription, actor(r))
	switch {
	case errors.Is(err, usage.ErrExists):
		s.fail(w, http.StatusConflict, "subscription_exists", "A subscription of that name exists.")
		return
	case err != nil:
		s.a.o.Logger.Warn("creating a subscription", "err", err)
		s.fail(w, http.StatusServiceUnavailable, "store_unavailable", "The usage store cannot be written now.")
		return
	}
	s.changed(r, "create", req.Name)
	writeJSON(w, http.StatusCreated, c)
}

// update applies a change to a runtime subscription, refusing the config
// file's.
func (s *subscriptionsAPI) update(w http.ResponseWriter, r *http.Request, action string, change func(*usage.StoredSubscription) error) (usage.StoredSubscription, bool) {
	name := r.PathValue("name")
	if s.inConfig(name) {
		s.fail(w, http.StatusConflict, "read_only", "The subscription "+name+" is defined in the config file and is read-only here.")
		return usage.StoredSubscription{}, false
	}
	sub, err := s.store.UpdateSubscription(r.Context(), name, actor(r), action, change)
	var we *wire.Error
	switch {
	case errors.Is(err, usage.ErrNotFound):
		s.fail(w, http.StatusNotFound, "subscription_not_found", "No runtime subscription is named "+name+".")
		return sub, false
	case errors.As(err, &we):
		we.Write(w)
		return sub, false
	case err != nil:
		s.a.o.Logger.Warn("changing a subscription", "err", err)
		s.fail(w, http.StatusServiceUnavailable, "store_unavailable", "The usage store cannot be written now.")
		return sub, false
	}
	s.changed(r, action, name)
	return sub, true
}

func (s *subscriptionsAPI) regenerate(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Key string `json:"key"`
	}
	if !decode(w, r, &req) {
		return
	}
	if req.Key != "primary" && req.Key != "secondary" {
		s.fail(w, http.StatusBadRequest, "invalid_key", `key must be "primary" or "secondary".`)
		return
	}
	var c created
	sub, ok := s.update(w, r, "regenerate-"+req.Key, func(sub *usage.StoredSubscription) error {
		if req.Key == "primary" {
			c.PrimaryKey, sub.PrimaryDigest, sub.PrimaryLast4 = newKey()
		} else {
			c.SecondaryKey, sub.SecondaryDigest, sub.SecondaryLast4 = newKey()
		}
		return nil
	})
	if ok {
		c.StoredSubscription = sub
		writeJSON(w, http.StatusOK, c)
	}
}

func (s *subscriptionsAPI) patch(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Product   *string    `json:"product"`
		State     *string    `json:"state"`
		ExpiresAt *time.Time `json:"expires_at"`
	}
	if !decode(w, r, &req) {
		return
	}
	if req.State != nil && !slices.Contains([]string{"active", "suspended"}, *req.State) {
		s.fail(w, http.StatusBadRequest, "invalid_state", `state must be "active" or "suspended".`)
		return
	}
	if req.Product != nil && !s.productExists(*req.Product) {
		s.fail(w, http.StatusBadRequest, "unknown_product", "No product is named "+*req.Product+".")
		return
	}
	action := "update"
	if req.State != nil {
		action = map[string]string{"active": "activate", "suspended": "suspend"}[*req.State]
	}
	sub, ok := s.update(w, r, action, func(sub *usage.StoredSubscription) error {
		if req.Product != nil {
			sub.Product = *req.Product
		}
		if req.State != nil {
			sub.State = *req.State
		}
		if req.ExpiresAt != nil {
			sub.ExpiresAt = req.ExpiresAt.UTC()
		}
		return nil
	})
	if ok {
		writeJSON(w, http.StatusOK, sub)
	}
}

func (s *subscriptionsAPI) delete(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if s.inConfig(name) {
		s.fail(w, http.StatusConflict, "read_only", "The subscription "+name+" is defined in the config file and is read-only here.")
		return
	}
	err := s.store.DeleteSubscription(r.Context(), name, actor(r))
	switch {
	case errors.Is(err, usage.ErrNotFound):
		s.fail(w, http.StatusNotFound, "subscription_not_found", "No runtime subscription is named "+name+".")
		return
	case err != nil:
		s.a.o.Logger.Warn("deleting a subscription", "err", err)
		s.fail(w, http.StatusServiceUnavailable, "store_unavailable", "The usage store cannot be written now.")
		return
	}
	s.changed(r, "delete", name)
	w.WriteHeader(http.StatusNoContent)
}

func (s *subscriptionsAPI) audit(w http.ResponseWriter, r *http.Request) {
	entries, err := s.store.SubscriptionAudit(r.Context(), 1000)
	if err != nil {
		s.fail(w, http.StatusServiceUnavailable, "store_unavailable", "The usage store cannot be read now.")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"audit": entries})
}

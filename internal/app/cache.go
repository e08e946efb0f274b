package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sluice-gateway/sluice/internal/cache"
	"github.com/sluice-gateway/sluice/internal/cachestage"
	"github.com/sluice-gateway/sluice/internal/config"
	"github.com/sluice-gateway/sluice/internal/proxy"
	"github.com/sluice-gateway/sluice/internal/route"
	"github.com/tidwall/gjson"
)

// gatewaySubscription is the subscription Sluice's own requests (the
// response cache's embedding calls) run as, and are recorded under.
const gatewaySubscription = "sluice-cache"

// openCache opens the response cache's store and makes its stage. The
// store outlives reloads; a changed cache.store takes effect on restart.
func (g *Gateway) openCache(cfg *config.Config) (*cachestage.Stage, error) {
	var store cache.Store
	switch s := cfg.Cache.Store; s {
	case "", "memory":
		store = cache.NewMemory(cfg.Cache.MaxBytes, g.now)
	default:
		r, err := cache.NewRedis(s, cache.RedisOptions{IndexBytes: cfg.Cache.MaxBytes, Log: g.log, Now: g.now})
		if err != nil {
			return nil, fmt.Errorf("cache.store: %w", err)
		}
		store = r
	}
	var reg prometheus.Registerer
	if g.obs.metrics != nil {
		reg = g.obs.metrics.Registry()
	}
	return cachestage.New(cachestage.Options{
		Store:   store,
		Embed:   g.embed,
		Metrics: cachestage.NewMetrics(reg, store),
		Log:     g.log,
		Now:     g.now,
	}), nil
}

// gatewayCall marks the context of Sluice's own requests.
type gatewayCall struct{}

// gatewayCaller authenticates Sluice's own requests, made in process with
// a context no client request can carry: they run as gatewaySubscription,
// in a product that may use every model and has no limits, so that their
// cost is the gateway's and not a client's.
type gatewayCaller struct{}

// Authenticate implements proxy.Authenticator.
func (gatewayCaller) Authenticate(r *http.Request, t *route.Table) (*route.Subscription, error) {
	if r.Context().Value(gatewayCall{}) == nil {
		return nil, proxy.ErrNoCredential
	}
	return &route.Subscription{Name: gatewaySubscription, Product: route.GatewayProduct(t, gatewaySubscription)}, nil
}

// embed embeds text with model through the gateway's own pipeline: the
// model's pool, with its breakers and retries, and a ledger record under
// gatewaySubscription. The vector is made unit length.
func (g *Gateway) embed(ctx context.Context, model string, dims int, text string) ([]float32, error) {
	body := []byte(`{"model":` + strconv.Quote(model) + `,"input":` + strconv.Quote(text) + `,"dimensions":` + strconv.Itoa(dims) + `}`)
	ctx = context.WithValue(ctx, gatewayCall{}, true)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "/v1/embeddings", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.RemoteAddr = "127.0.0.1:0"
	req.Header.Set("Content-Type", "application/json")
	w := &recorder{header: http.Header{}}
	g.Handler.ServeHTTP(w, req)
	if w.status != http.StatusOK {
		return nil, fmt.Errorf("embeddings model %s answered %d: %.200s", model, w.status, w.body.Bytes())
	}
	emb := gjson.GetBytes(w.body.Bytes(), "data.0.embedding")
	if !emb.IsArray() {
		return nil, errors.New("embeddings answer without data[0].embedding")
	}
	v := make([]float32, 0, dims)
	var sum float64
	emb.ForEach(func(_, x gjson.Result) bool {
		f := x.Float()
		v = append(v, float32(f))
		sum += f * f
		return true
	})
	if sum == 0 {
		return nil, errors.New("embeddings answer with a zero vector")
	}
	scale := float32(1 / math.Sqrt(sum))
	for i := range v {
		v[i] *= scale
	}
	return v, nil
}

// recorder is the http.ResponseWriter of an in-process request.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(p)
}

func (r *recorder) Flush() {}

// closeCache closes the cache's store.
func (g *Gateway) closeCache() {
	if g.cache == nil {
		return
	}
	if err := g.cache.Store().Close(); err != nil {
		g.log.Warn("closing the response cache", "err", err)
	}
}

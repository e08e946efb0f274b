package config

import (
	"net/url"
	"strings"
	"time"
)

// Cache configures the response cache's store. Which requests are cached,
// and how, is each product's Cache.
type Cache struct {
	// Store is memory (default: entries in this instance alone) or a
	// redis:// or rediss:// URL: entries in Redis, shared by every
	// instance, and the semantic index kept in each instance in step
	// through a Redis stream. A store that cannot be reached never fails a
	// request: the request goes to its backend as a miss.
	Store string `yaml:"store" json:"store"`
	// MaxBytes bounds the memory store's entries (answers, keys and
	// vectors); the least recently used go first. Default 268435456 (256
	// MiB). With Redis, it bounds the semantic index held in each instance.
	MaxBytes int64 `yaml:"max_bytes" json:"max_bytes"`
}

// ProductCache is a product's response cache: its requests for chat
// completions, completions, responses and embeddings are answered from
// stored answers when they are the same (exact) or, for the text
// operations, close in meaning (semantic).
type ProductCache struct {
	// VaryBy lists what partitions the cache: subscription, product,
	// model or header:NAME (the value of a request header). An answer
	// stored in one partition never serves another. Default [subscription].
	VaryBy []string `yaml:"vary_by" json:"vary_by"`
	// Exact answers a request that is the same as one already answered,
	// whatever the order of its keys or its whitespace. Nil: off.
	Exact *ExactCache `yaml:"exact" json:"exact,omitempty"`
	// Semantic answers a request whose last message is close in meaning
	// to one already answered in the same partition. Nil: off.
	Semantic *SemanticCache `yaml:"semantic" json:"semantic,omitempty"`
}

// ExactCache is the exact-match cache of a product.
type ExactCache struct {
	// TTL is how long a stored answer serves identical requests. Default 1h.
	TTL Duration `yaml:"ttl" json:"ttl"`
}

// SemanticCache is the semantic cache of a product, as API Management's
// azure-openai-semantic-cache-lookup and -store.
type SemanticCache struct {
	// Embeddings is the model (a key of models:) that embeds prompts,
	// called through its pool as Sluice's own request: breakers, retries
	// and limits apply, and the call is metered to the gateway, not to the
	// client. Required.
	Embeddings string `yaml:"embeddings" json:"embeddings"`
	// ScoreThreshold is the greatest cosine distance (0: the same
	// direction, 1: unrelated, 2: opposite) at which the nearest stored
	// prompt serves: API Management's score-threshold. Start at 0.05;
	// above 0.2 different questions start to match. Required, in [0, 2].
	ScoreThreshold float64 `yaml:"score_threshold" json:"score_threshold"`
	// IgnoreSystemMessages leaves the system and developer messages out of
	// the embedded text. They still partition the cache: a different
	// system prompt never matches. Default false.
	IgnoreSystemMessages bool `yaml:"ignore_system_messages" json:"ignore_system_messages"`
	// MaxMessageCount skips conversations of more messages: they are
	// neither looked up nor stored. 0: no limit. Default 0.
	MaxMessageCount int `yaml:"max_message_count" json:"max_message_count"`
	// Duration is how long a stored answer may serve. Default 1h.
	Duration Duration `yaml:"duration" json:"duration"`
	// Dimensions is the length of the vectors asked of the embeddings
	// model (text-embedding-3's dimensions): shorter vectors search
	// faster. Default 512; 0 is not allowed.
	Dimensions int `yaml:"dimensions" json:"dimensions"`
}

const (
	defaultCacheStore    = "memory"
	defaultCacheMaxBytes = 256 << 20
	defaultCacheTTL      = time.Hour
	defaultCacheDims     = 512
)

func (d defaulter) cache(c *Config) {
	d.str("cache.store", &c.Cache.Store, defaultCacheStore)
	d.set("cache.max_bytes", c.Cache.MaxBytes == 0, func() { c.Cache.MaxBytes = defaultCacheMaxBytes })
	for i := range c.Products {
		pc := c.Products[i].Cache
		if pc == nil {
			continue
		}
		path := field(index("products", i), "cache")
		d.list(field(path, "vary_by"), &pc.VaryBy, []string{"subscription"})
		if pc.Exact != nil {
			d.dur(field(path, "exact.ttl"), &pc.Exact.TTL, defaultCacheTTL)
		}
		if s := pc.Semantic; s != nil {
			d.dur(field(path, "semantic.duration"), &s.Duration, defaultCacheTTL)
			d.num(field(path, "semantic.dimensions"), &s.Dimensions, defaultCacheDims)
		}
	}
}

func (c *Config) validateCache(p *problems) {
	if s := c.Cache.Store; s != "memory" && s != "" {
		// The URL may hold a password, so it is never quoted.
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
			p.add("cache.store", "want memory or a redis:// or rediss:// URL with a host")
		}
	}
	if c.Cache.MaxBytes < 0 {
		p.add("cache.max_bytes", "must not be negative")
	}
	for i, pr := range c.Products {
		if pr.Cache == nil {
			continue
		}
		path := field(index("products", i), "cache")
		c.checkProductCache(p, path, pr)
	}
}

func (c *Config) checkProductCache(p *problems, path string, pr Product) {
	pc := pr.Cache
	for j, v := range pc.VaryBy {
		vp := index(field(path, "vary_by"), j)
		switch {
		case v == "subscription", v == "product", v == "model":
		case strings.HasPrefix(v, "header:") && isToken(strings.TrimPrefix(v, "header:")):
		default:
			p.add(vp, "want subscription, product, model or header:NAME")
		}
	}
	if pc.Exact == nil && pc.Semantic == nil {
		p.add(path, "set exact, semantic or both")
	}
	if pc.Exact != nil {
		positive(p, field(path, "exact.ttl"), pc.Exact.TTL)
	}
	s := pc.Semantic
	if s == nil {
		return
	}
	sp := field(path, "semantic")
	if s.Embeddings == "" {
		p.add(field(sp, "embeddings"), "the embeddings model is required")
	} else if _, ok := c.Models[s.Embeddings]; !ok {
		p.add(field(sp, "embeddings"), "model %q is not in models", s.Embeddings)
	}
	if !(s.ScoreThreshold >= 0 && s.ScoreThreshold <= 2) {
		p.add(field(sp, "score_threshold"), "want a cosine distance from 0 to 2")
	}
	if s.MaxMessageCount < 0 {
		p.add(field(sp, "max_message_count"), "must not be negative")
	}
	positive(p, field(sp, "duration"), s.Duration)
	if s.Dimensions < 1 || s.Dimensions > 4096 {
		p.add(field(sp, "dimensions"), "want 1 to 4096")
	}
}

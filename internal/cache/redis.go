package cache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/logging"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Redis keys: entries under entryPrefix+key; the semantic log, a stream
// every instance tails to keep its index in step, under logKey.
const (
	entryPrefix = "sluice:cache:e:"
	logKey      = "sluice:cache:log"
)

// logKeep is how long the semantic log keeps an entry: the longest
// semantic duration another instance learns of (each entry also carries
// its own expiry, so an older one is never served past it).
const logKeep = 24 * time.Hour

// RedisOptions configure a Redis store.
type RedisOptions struct {
	// IndexBytes bounds the semantic index held in this instance (0: no
	// bound).
	IndexBytes int64
	// Timeout bounds each call to Redis that the URL does not bound.
	// Default 200ms.
	Timeout time.Duration
	// Log gets a line when the log cannot be tailed, at most one a minute.
	Log *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// RedisStore keeps entries in Redis, shared by every instance, each with
// its TTL. The semantic index is searched in process: every instance tails
// the semantic log (a Redis stream) into its own Index, so that an answer
// stored by one is found by the others within a second. A lookup whose
// entry has expired is a miss, and its vector is dropped. Safe for
// concurrent use.
type RedisStore struct {
	client *redis.Client
	index  *Index
	log    *slog.Logger
	now    func() time.Time
	cancel context.CancelFunc
	done   chan struct{}
	close  sync.Once
}

var quietRedis sync.Once

// NewRedis connects to the Redis of rawURL (redis:// or rediss://) and
// starts tailing the semantic log. It fails only on a URL that does not
// parse: a Redis that does not answer yet is a miss until it does.
func NewRedis(rawURL string, o RedisOptions) (*RedisStore, error) {
	quietRedis.Do(func() { redis.SetLogger(&logging.VoidLogger{}) })
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL, password included
		}
		return nil, fmt.Errorf("cache: redis url: %w", err)
	}
	if o.Timeout <= 0 {
		o.Timeout = 200 * time.Millisecond
	}
	for _, d := range []*time.Duration{&opts.DialTimeout, &opts.WriteTimeout, &opts.PoolTimeout, &opts.ReadTimeout} {
		if *d == 0 {
			*d = o.Timeout
		}
	}
	if opts.PoolSize == 0 {
		opts.PoolSize = max(8, 2*runtime.GOMAXPROCS(0))
	}
	opts.MaxRetries = -1
	opts.DialerRetries = 1
	opts.ContextTimeoutEnabled = true
	opts.DisableIdentity = true
	opts.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &RedisStore{client: redis.NewClient(opts), index: NewIndex(o.IndexBytes), log: o.Log, now: o.Now,
		cancel: cancel, done: make(chan struct{})}
	go s.tail(ctx)
	return s, nil
}

// Get implements Store.
func (s *RedisStore) Get(ctx context.Context, key string) (*Entry, error) {
	b, err := s.client.Get(ctx, entryPrefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cache: redis get: %w", err)
	}
	e := &Entry{}
	if err := e.UnmarshalBinary(b); err != nil {
		return nil, nil // not ours, or from another version: a miss
	}
	return e, nil
}

// Put implements Store: the entry with its TTL and, with a vector, a line
// in the semantic log, in one MULTI.
func (s *RedisStore) Put(ctx context.Context, key string, e *Entry, ttl time.Duration, v *Vector) error {
	b, _ := e.MarshalBinary()
	now := s.now()
	exp := now.Add(ttl)
	_, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, entryPrefix+key, b, ttl)
		if v != nil {
			p.XAdd(ctx, &redis.XAddArgs{
				Stream: logKey, Approx: true,
				MinID:  strconv.FormatInt(now.Add(-logKeep).UnixMilli(), 10),
				Values: []any{"p", v.Partition, "k", key, "x", strconv.FormatInt(exp.UnixMilli(), 10), "v", vectorBytes(v.V)},
			})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cache: redis put: %w", err)
	}
	if v != nil {
		s.index.Add(v.Partition, key, v.V, exp.UnixNano()) // found here at once, before the tail sees it
	}
	return nil
}

func vectorBytes(v []float32) string {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return string(b)
}

func vectorOf(s string) []float32 {
	v := make([]float32, len(s)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32([]byte(s[4*i : 4*i+4])))
	}
	return v
}

// Nearest implements Store, from the index in process.
func (s *RedisStore) Nearest(partition string, vec []float32) (string, float32, bool) {
	return s.index.Nearest(partition, vec, s.now().UnixNano())
}

// Forget implements Store. Only this instance's index forgets; the others
// forget when they find the entry gone too.
func (s *RedisStore) Forget(partition, key string) { s.index.Remove(partition, key) }

// Clear implements Store: the scope's entries go from Redis, and a line in
// the log has every instance drop the scope's vectors. The count is of the
// keys this call unlinked: an entry another instance dropped meanwhile, or
// that expired, is not in it.
func (s *RedisStore) Clear(ctx context.Context, scope string) (int64, error) {
	prefix := ScopePrefix(scope)
	s.index.ClearPrefix(prefix)
	if err := s.client.XAdd(ctx, &redis.XAddArgs{Stream: logKey, Values: []any{"clear", prefix}}).Err(); err != nil {
		return 0, fmt.Errorf("cache: redis clear: %w", err)
	}
	iter := s.client.Scan(ctx, 0, entryPrefix+redisGlobEscape(prefix)+"*", 1000).Iterator()
	var batch []string
	var n int64
	unlink := func() error {
		m, err := s.client.Unlink(ctx, batch...).Result()
		if err != nil {
			return fmt.Errorf("cache: redis clear: %w", err)
		}
		n += m
		batch = batch[:0]
		return nil
	}
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 1000 {
			if err := unlink(); err != nil {
				return n, err
			}
		}
	}
	if err := iter.Err(); err != nil {
		return n, fmt.Errorf("cache: redis clear: %w", err)
	}
	if len(batch) > 0 {
		if err := unlink(); err != nil {
			return n, err
		}
	}
	return n, nil
}

// redisGlobEscape escapes the glob characters of s (a prefix of hex digits
// and ':' has none, but a key's shape may change).
func redisGlobEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`, `]`, `\]`)
	return r.Replace(s)
}

// Stats implements Store: the vectors and bytes of the index in process
// (the entries live in Redis).
func (s *RedisStore) Stats() (entries, bytes int64) { return s.index.Stats() }

// Close stops tailing the log and closes the connections.
func (s *RedisStore) Close() error {
	var err error
	s.close.Do(func() {
		s.cancel()
		<-s.done
		err = s.client.Close()
	})
	return err
}

// tailBlock is how long one XREAD waits for new lines.
const tailBlock = time.Second

// tail keeps the index in step with the log: the lines there are when it
// starts, then each new one, until ctx ends. When Redis fails it waits a
// second and goes on from the last line it read; expired vectors are swept
// once a minute.
func (s *RedisStore) tail(ctx context.Context) {
	defer close(s.done)
	last := "0-0"
	var lastLog, lastSweep time.Time
	for ctx.Err() == nil {
		streams, err := s.client.XRead(ctx, &redis.XReadArgs{Streams: []string{logKey, last}, Count: 2000, Block: tailBlock}).Result()
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			if ctx.Err() != nil {
				return
			}
			if now := s.now(); now.Sub(lastLog) >= time.Minute {
				lastLog = now
				s.log.Warn("the response cache cannot read its semantic log from Redis; retrying", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		default:
			for _, st := range streams {
				for _, m := range st.Messages {
					s.apply(m.Values)
					last = m.ID
				}
			}
		}
		if now := s.now(); now.Sub(lastSweep) >= time.Minute {
			lastSweep = now
			s.index.Sweep(now.UnixNano())
		}
	}
}

// apply takes one line of the log into the index.
func (s *RedisStore) apply(vals map[string]any) {
	if p, ok := vals["clear"].(string); ok {
		s.index.ClearPrefix(p)
		return
	}
	part, _ := vals["p"].(string)
	key, _ := vals["k"].(string)
	xs, _ := vals["x"].(string)
	vs, _ := vals["v"].(string)
	exp, err := strconv.ParseInt(xs, 10, 64)
	if part == "" || key == "" || err != nil || len(vs) == 0 || len(vs)%4 != 0 {
		return
	}
	expNs := time.UnixMilli(exp).UnixNano()
	if expNs <= s.now().UnixNano() {
		return
	}
	s.index.Add(part, key, vectorOf(vs), expNs)
}

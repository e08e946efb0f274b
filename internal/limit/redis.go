package limit

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/logging"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// reserveScript checks every counter and adds to all or none, in one round
// trip; Redis runs a script without interleaving other commands, which makes
// the check and the charge atomic across every gateway instance.
//
// KEYS[i] is counter i; ARGV[5i-4] to ARGV[5i] are its delta, limit, time
// to live in milliseconds, and for an adaptive limit the index of the
// counter whose remainder it shares (0: none) and the share. A counter
// passes when used+delta <= limit, or with a delta of 0 (charge after the
// fact) when used < limit. It returns {1 if charged else 0, used_1, …,
// used_n, limit_1, …, limit_n}: the values before the call and the
// effective limits.
var reserveScript = redis.NewScript(`
local n = #KEYS
local out = {1}
local used, limit = {}, {}
for i = 1, n do
  used[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
  limit[i] = tonumber(ARGV[5*i-3])
end
for i = 1, n do
  local of = tonumber(ARGV[5*i-1])
  if of > 0 then
    local left = math.max(limit[of] - used[of], 0)
    limit[i] = limit[i] + math.floor(tonumber(ARGV[5*i]) * left)
  end
end
for i = 1, n do
  local delta = tonumber(ARGV[5*i-4])
  out[i+1] = used[i]
  out[n+i+1] = limit[i]
  if (delta > 0 and used[i] + delta > limit[i]) or (delta <= 0 and used[i] >= limit[i]) then
    out[1] = 0
  end
end
if out[1] == 1 then
  for i = 1, n do
    if ARGV[5*i-4] ~= '0' then
      redis.call('INCRBY', KEYS[i], ARGV[5*i-4])
      redis.call('PEXPIRE', KEYS[i], ARGV[5*i-2])
    end
  end
end
return out
`)

// adjustScript adds to every counter without checks, in one round trip. A
// counter never goes below 0: after Redis lost its data a refund must not
// make room that was never charged.
//
// KEYS[i] is counter i; ARGV[2i-1] and ARGV[2i] are its delta and time to
// live in milliseconds. It returns the new values.
var adjustScript = redis.NewScript(`
local out = {}
for i = 1, #KEYS do
  local v = redis.call('INCRBY', KEYS[i], ARGV[2*i-1])
  if v < 0 then
    redis.call('SET', KEYS[i], 0)
    v = 0
  end
  redis.call('PEXPIRE', KEYS[i], ARGV[2*i])
  out[i] = v
end
return out
`)

// RedisStore is a Store in one Redis server, shared by every gateway
// instance that uses it: each Reserve and each Adjust is one script, one
// round trip, atomic. Counters expire on their own. It is safe for
// concurrent use; Close releases its connections.
//
// Redis Cluster is not supported: a request's counters (subscription,
// product, global) hash to different slots, and one script may only touch
// one slot.
type RedisStore struct {
	client *redis.Client
}

// NewRedis returns a RedisStore for a URL such as
// "redis://user:password@host:6379/0" (rediss:// for TLS). It does not
// connect: the first call does, and after an outage the client reconnects by
// itself.
//
// The client is set up for a request path: dial, read, write and pool
// timeouts of DefaultTimeout, a pool of 2 connections per CPU (at least 8),
// and no retries, since a script that timed out may have run and must not be
// run twice. The URL's query may set dial_timeout, read_timeout,
// write_timeout, pool_timeout and pool_size (go-redis names); the Limiter's
// Timeout bounds each call in any case.
func NewRedis(rawURL string) (*RedisStore, error) {
	// go-redis prints every failed dial to the standard logger on its own;
	// the Limiter reports store failures itself, at most once per 10 s.
	quietRedis.Do(func() { redis.SetLogger(&logging.VoidLogger{}) })
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		// url.Error repeats the URL, password included.
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("limit: redis url: %w", err)
	}
	for _, d := range []*time.Duration{&opts.DialTimeout, &opts.ReadTimeout, &opts.WriteTimeout, &opts.PoolTimeout} {
		if *d == 0 {
			*d = DefaultTimeout
		}
	}
	if opts.PoolSize == 0 {
		opts.PoolSize = max(8, 2*runtime.GOMAXPROCS(0))
	}
	opts.MaxRetries = -1
	// One dial attempt per call; after PoolSize failed dials in a row the
	// pool fails fast and probes in the background once a second until
	// Redis is back.
	opts.DialerRetries = 1
	opts.ContextTimeoutEnabled = true
	opts.DisableIdentity = true
	opts.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return &RedisStore{client: redis.NewClient(opts)}, nil
}

var quietRedis sync.Once

// Close closes the store's connections.
func (s *RedisStore) Close() error { return s.client.Close() }

// Reserve implements Store with one EVALSHA of reserveScript (EVAL when Redis
// does not have it cached, as after a restart).
func (s *RedisStore) Reserve(ctx context.Context, now time.Time, ops []Op) (bool, error) {
	keys := make([]string, len(ops))
	args := make([]any, 0, 5*len(ops))
	for i := range ops {
		keys[i] = ops[i].Counter.String()
		args = append(args, ops[i].Delta, ops[i].Limit, ttlMillis(ops[i].Expires, now),
			ops[i].ShareOf, strconv.FormatFloat(ops[i].Share, 'f', -1, 64))
	}
	v, err := reserveScript.Run(ctx, s.client, keys, args...).Int64Slice()
	if err != nil {
		return false, err
	}
	if len(v) != 2*len(ops)+1 {
		return false, fmt.Errorf("reserve script returned %d values for %d counters", len(v), len(ops))
	}
	for i := range ops {
		ops[i].Used, ops[i].Limit, ops[i].ShareOf = v[i+1], v[len(ops)+i+1], 0
	}
	return v[0] == 1, nil
}

// Adjust implements Store with one EVALSHA of adjustScript.
func (s *RedisStore) Adjust(ctx context.Context, now time.Time, ops []Op) error {
	keys := make([]string, len(ops))
	args := make([]any, 0, 2*len(ops))
	for i := range ops {
		keys[i] = ops[i].Counter.String()
		args = append(args, ops[i].Delta, ttlMillis(ops[i].Expires, now))
	}
	v, err := adjustScript.Run(ctx, s.client, keys, args...).Int64Slice()
	if err != nil {
		return err
	}
	if len(v) != len(ops) {
		return fmt.Errorf("adjust script returned %d values for %d counters", len(v), len(ops))
	}
	for i := range ops {
		ops[i].Used = v[i]
	}
	return nil
}

// ttlMillis returns how long from now a counter must live to reach expires,
// at least 1 ms. It is relative, not PEXPIREAT, so Redis's clock need not
// agree with the caller's.
func ttlMillis(expires, now time.Time) string {
	return strconv.FormatInt(max(expires.Sub(now).Milliseconds(), 1), 10)
}

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
// KEYS[1] to KEYS[n] are the counters and KEYS[n+1], when ARGV[1] is not
// "0", the reservation's key. ARGV[1] is how long in milliseconds that key
// lives once the script adds; ARGV[5i-3] to ARGV[5i+1] are counter i's delta,
// limit, time to live in milliseconds, and for an adaptive limit the index of
// the counter whose remainder it shares (0: none) and the share. A counter
// passes when used+delta <= limit, or with a delta of 0 (charge after the
// fact) when used < limit; a reservation whose key exists is a late copy and
// adds nothing. It returns {1 if charged else 0, used_1, …, used_n, limit_1,
// …, limit_n}: the values before the call and the effective limits.
var reserveScript = redis.NewScript(`
local n = #KEYS
local id
if ARGV[1] ~= '0' then
  id = KEYS[n]
  n = n - 1
end
local out = {1}
local used, limit = {}, {}
for i = 1, n do
  used[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
  limit[i] = tonumber(ARGV[5*i-2])
end
for i = 1, n do
  local of = tonumber(ARGV[5*i])
  if of > 0 then
    local left = math.max(limit[of] - used[of], 0)
    limit[i] = limit[i] + math.floor(tonumber(ARGV[5*i+1]) * left)
  end
end
for i = 1, n do
  local delta = tonumber(ARGV[5*i-3])
  out[i+1] = used[i]
  out[n+i+1] = limit[i]
  if (delta > 0 and used[i] + delta > limit[i]) or (delta <= 0 and used[i] >= limit[i]) then
    out[1] = 0
  end
end
if id and redis.call('EXISTS', id) == 1 then
  out[1] = 0
end
if out[1] == 1 then
  for i = 1, n do
    if ARGV[5*i-3] ~= '0' then
      redis.call('INCRBY', KEYS[i], ARGV[5*i-3])
      redis.call('PEXPIRE', KEYS[i], ARGV[5*i-1])
    end
  end
  if id then
    redis.call('SET', id, 'r', 'PX', ARGV[1])
  end
end
return out
`)

// settleScript applies one Settlement in one round trip. A counter never
// goes below 0: after Redis lost its data a refund must not make room that
// was never charged.
//
// KEYS[1] to KEYS[n] are the counters and KEYS[n+1], unless ARGV[1] is "a",
// the reservation's key, which holds "r" while the reservation is counted
// and "s" once it is settled. ARGV[1] is the mode: "a" adds without a key,
// "c" settles a counted reservation, "u" one in doubt, "l" counts one late
// (see SettleMode). ARGV[2] is how long in milliseconds the key lives after
// the call; ARGV[3i], ARGV[3i+1] and ARGV[3i+2] are counter i's delta, time
// to live in milliseconds, and what the reservation added to it. It returns
// {1 if applied else 0, value_1, …, value_n}: the values after the call.
var settleScript = redis.NewScript(`
local mode = ARGV[1]
local n = #KEYS
local held = false
if mode ~= 'a' then
  n = n - 1
  held = redis.call('GET', KEYS[n+1])
end
local out = {1}
if held == 's' or (mode == 'l' and held) then
  out[1] = 0
  for i = 1, n do
    out[i+1] = tonumber(redis.call('GET', KEYS[i]) or '0')
  end
  return out
end
for i = 1, n do
  local d = tonumber(ARGV[3*i])
  if mode == 'u' and held ~= 'r' then
    d = d + tonumber(ARGV[3*i+2])
  end
  local v
  if d ~= 0 then
    v = redis.call('INCRBY', KEYS[i], d)
    if v < 0 then
      redis.call('SET', KEYS[i], 0)
      v = 0
    end
    redis.call('PEXPIRE', KEYS[i], ARGV[3*i+1])
  else
    v = tonumber(redis.call('GET', KEYS[i]) or '0')
  end
  out[i+1] = v
end
if mode ~= 'a' then
  local state = 's'
  if mode == 'l' then
    state = 'r'
  end
  redis.call('SET', KEYS[n+1], state, 'PX', ARGV[2])
end
return out
`)

// RedisStore is a Store in one Redis server, shared by every gateway
// instance that uses it: each Reserve and each Settle is one script, one
// round trip, atomic. Counters expire on their own, and so do the keys that
// remember reservations (one per request, "sluice:reservation:" id, for as
// long as the request runs and SettledFor after). It is safe for
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

// reservationKey is the key of reservation id: "sluice:reservation:" id. It
// cannot be a counter's key, which has at least four colons.
func reservationKey(id string) string { return "sluice:reservation:" + id }

// Reserve implements Store with one EVALSHA of reserveScript (EVAL when Redis
// does not have it cached, as after a restart). With an id, the reservation's
// key lives for HoldFor.
func (s *RedisStore) Reserve(ctx context.Context, now time.Time, id string, ops []Op) (bool, error) {
	keys := make([]string, len(ops), len(ops)+1)
	args := make([]any, 1, 1+5*len(ops))
	args[0] = "0"
	for i := range ops {
		keys[i] = ops[i].Counter.String()
		args = append(args, ops[i].Delta, ops[i].Limit, ttlMillis(ops[i].Expires, now),
			ops[i].ShareOf, strconv.FormatFloat(ops[i].Share, 'f', -1, 64))
	}
	if id != "" {
		keys = append(keys, reservationKey(id))
		args[0] = HoldFor.Milliseconds()
	}
	v, err := reserveScript.Run(ctx, s.client, keys, args...).Int64Slice()
	if err != nil {
		return false, storeErr(err)
	}
	if len(v) != 2*len(ops)+1 {
		return false, fmt.Errorf("reserve script returned %d values for %d counters", len(v), len(ops))
	}
	for i := range ops {
		ops[i].Used, ops[i].Limit, ops[i].ShareOf = v[i+1], v[len(ops)+i+1], 0
	}
	return v[0] == 1, nil
}

// Settle implements Store: one EVALSHA of settleScript for one settlement, a
// pipeline of them for several (after loading the script when Redis lost
// it). The reservation's key lives for SettledFor after a settlement, and
// for HoldFor after a late charge.
func (s *RedisStore) Settle(ctx context.Context, batch []Settlement) error {
	if len(batch) == 1 {
		keys, args := settleArgs(&batch[0])
		return settled(&batch[0], settleScript.Run(ctx, s.client, keys, args...))
	}
	for attempt := 0; ; attempt++ {
		cmds, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := range batch {
				keys, args := settleArgs(&batch[i])
				settleScript.EvalSha(ctx, p, keys, args...)
			}
			return nil
		})
		if err != nil && attempt == 0 && redis.HasErrorPrefix(err, "NOSCRIPT") {
			if err := settleScript.Load(ctx, s.client).Err(); err != nil {
				return storeErr(err)
			}
			continue
		}
		if err != nil {
			return storeErr(err)
		}
		for i, c := range cmds {
			if err := settled(&batch[i], c.(*redis.Cmd)); err != nil {
				return err
			}
		}
		return nil
	}
}

// Read implements Store with one MGET, which Redis runs atomically. Redis
// drops expired counters by itself, on its own clock; now is not used.
func (s *RedisStore) Read(ctx context.Context, _ time.Time, counters []Counter) ([]int64, error) {
	if len(counters) == 0 {
		return nil, nil
	}
	keys := make([]string, len(counters))
	for i := range counters {
		keys[i] = counters[i].String()
	}
	vals, err := s.client.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, storeErr(err)
	}
	if len(vals) != len(keys) {
		return nil, fmt.Errorf("mget returned %d values for %d counters", len(vals), len(keys))
	}
	out := make([]int64, len(vals))
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue // nil: no such counter
		}
		n, err := strconv.ParseInt(str, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("counter %s: %w", keys[i], err)
		}
		out[i] = n
	}
	return out, nil
}

// settleArgs returns settleScript's keys and arguments for st.
func settleArgs(st *Settlement) ([]string, []any) {
	keys := make([]string, len(st.Ops), len(st.Ops)+1)
	args := make([]any, 2, 2+3*len(st.Ops))
	args[0], args[1] = "a", "0"
	if st.ID != "" {
		keys = append(keys, reservationKey(st.ID))
		switch st.Mode {
		case SettleUnsure:
			args[0], args[1] = "u", SettledFor.Milliseconds()
		case ChargeLate:
			args[0], args[1] = "l", HoldFor.Milliseconds()
		default:
			args[0], args[1] = "c", SettledFor.Milliseconds()
		}
	}
	for i := range st.Ops {
		op := &st.Ops[i]
		keys[i] = op.Counter.String()
		reserved := st.Tokens
		if op.Counter.Kind == RequestsPerMinute {
			reserved = 1
		}
		args = append(args, op.Delta, ttlMillis(op.Expires, st.Now), reserved)
	}
	return keys, args
}

// settled reads settleScript's answer into st's ops.
func settled(st *Settlement, cmd *redis.Cmd) error {
	v, err := cmd.Int64Slice()
	if err != nil {
		return storeErr(err)
	}
	if len(v) != len(st.Ops)+1 {
		return fmt.Errorf("settle script returned %d values for %d counters", len(v), len(st.Ops))
	}
	for i := range st.Ops {
		st.Ops[i].Used = v[i+1]
	}
	return nil
}

// storeErr marks the error of a closed client as ErrStoreClosed.
func storeErr(err error) error {
	if errors.Is(err, redis.ErrClosed) {
		return fmt.Errorf("%w: %w", ErrStoreClosed, err)
	}
	return err
}

// ttlMillis returns how long from now a counter must live to reach expires,
// at least 1 ms. It is relative, not PEXPIREAT, so Redis's clock need not
// agree with the caller's.
func ttlMillis(expires, now time.Time) string {
	return strconv.FormatInt(max(expires.Sub(now).Milliseconds(), 1), 10)
}

package webui

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// sessionKeyPrefix starts the Redis key of a session; the hex SHA-256
	// of its cookie follows.
	sessionKeyPrefix = "sluice:ui:session:"
	// sealLabel is what the key that encrypts a session is derived with,
	// by HMAC-SHA256 keyed with the cookie: another function of the cookie
	// than the lookup hash, so that the Redis key does not open the value.
	sealLabel = "sluice ui session key"
	// sessionCallTimeout bounds a call to Redis whatever the client's own
	// timeouts, so that no dashboard request hangs on it.
	sessionCallTimeout = 2 * time.Second
)

// redisSessions keep the signed-in dashboards in the Redis every instance
// shares, so that a browser signed in through one instance is signed in on
// all of them and a sign-out ends it on all of them.
//
// A session is stored under sluice:ui:session:<hex SHA-256 of the cookie>,
// encrypted with AES-256-GCM under a key derived from the cookie: Redis
// alone, without the cookie that only the browser holds, reveals neither
// the credential nor the CSRF token. The key's TTL is the idle timeout,
// restarted on every use; the absolute limit is checked against the
// created time inside the value.
type redisSessions struct {
	client redis.Cmdable
	now    func() time.Time
	idle   time.Duration // sessionIdle; shorter in tests
}

func newRedisSessions(client redis.Cmdable, now func() time.Time) *redisSessions {
	return &redisSessions{client: client, now: now, idle: sessionIdle}
}

// sealed is what a stored session holds, before encryption.
type sealed struct {
	Credential string `json:"credential"`
	CSRF       string `json:"csrf"`
	Created    int64  `json:"created"` // Unix milliseconds
}

// sessionRedisKey is the Redis key of cookie's session.
func sessionRedisKey(cookie string) string {
	sum := sha256.Sum256([]byte(cookie))
	return sessionKeyPrefix + hex.EncodeToString(sum[:])
}

// sessionAEAD is the cipher of cookie's session.
func sessionAEAD(cookie string) cipher.AEAD {
	m := hmac.New(sha256.New, []byte(cookie))
	m.Write([]byte(sealLabel))
	block, err := aes.NewCipher(m.Sum(nil))
	if err != nil {
		panic("webui: aes: " + err.Error()) // a 32-byte key is always valid
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic("webui: gcm: " + err.Error())
	}
	return aead
}

// storeErr wraps a Redis failure as errSessionStore, keeping its cause.
func storeErr(op string, err error) error {
	return fmt.Errorf("%w: %s: %w", errSessionStore, op, err)
}

func (s *redisSessions) create(ctx context.Context, credential string) (string, *session, error) {
	now := s.now()
	cookie := randomToken()
	se := &session{credential: credential, csrf: randomToken(), created: now, seen: now}
	plain, err := json.Marshal(sealed{Credential: se.credential, CSRF: se.csrf, Created: now.UnixMilli()})
	if err != nil {
		return "", nil, err
	}
	key := sessionRedisKey(cookie)
	aead := sessionAEAD(cookie)
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	_, _ = rand.Read(nonce)
	// The Redis key is the additional data: a value copied under another
	// key does not open.
	value := aead.Seal(nonce, nonce, plain, []byte(key))
	ctx, cancel := context.WithTimeout(ctx, sessionCallTimeout)
	defer cancel()
	if err := s.client.Set(ctx, key, value, s.idle).Err(); err != nil {
		return "", nil, storeErr("set", err)
	}
	return cookie, se, nil
}

func (s *redisSessions) get(ctx context.Context, cookie string) (*session, error) {
	if cookie == "" {
		return nil, nil
	}
	key := sessionRedisKey(cookie)
	ctx, cancel := context.WithTimeout(ctx, sessionCallTimeout)
	defer cancel()
	// GETEX reads the session and restarts its idle time in one step.
	value, err := s.client.GetEx(ctx, key, s.idle).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	} else if err != nil {
		return nil, storeErr("getex", err)
	}
	aead := sessionAEAD(cookie)
	if len(value) < aead.NonceSize() {
		return nil, nil
	}
	plain, err := aead.Open(nil, value[:aead.NonceSize()], value[aead.NonceSize():], []byte(key))
	if err != nil {
		return nil, nil // not written for this cookie: no session
	}
	var v sealed
	if err := json.Unmarshal(plain, &v); err != nil {
		return nil, nil
	}
	now := s.now()
	se := &session{credential: v.Credential, csrf: v.CSRF, created: time.UnixMilli(v.Created), seen: now}
	if now.Sub(se.created) > sessionMax {
		if err := s.client.Del(ctx, key).Err(); err != nil {
			return nil, storeErr("del", err)
		}
		return nil, nil
	}
	return se, nil
}

func (s *redisSessions) end(ctx context.Context, cookie string) error {
	ctx, cancel := context.WithTimeout(ctx, sessionCallTimeout)
	defer cancel()
	if err := s.client.Del(ctx, sessionRedisKey(cookie)).Err(); err != nil {
		return storeErr("del", err)
	}
	return nil
}

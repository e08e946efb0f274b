package webui

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"sync"
	"time"
)

const (
	// sessionCookie names the dashboard's session cookie: HttpOnly,
	// SameSite=Strict, Path=/ui/.
	sessionCookie = "sluice_ui_session"
	// sessionIdle is how long a session lasts without a request.
	sessionIdle = 2 * time.Hour
	// sessionMax is how long a session lasts at most.
	sessionMax = 12 * time.Hour
	// maxSessions bounds the sessions kept; the oldest goes first.
	maxSessions = 1000
)

// errSessionStore is the session store failing to answer (Redis down or
// too slow): the request gets a 503, never a session that only one
// instance knows.
var errSessionStore = errors.New("session store unavailable")

// sessionStore keeps the signed-in dashboards by cookie: in this process's
// memory (memorySessions) or in the Redis every instance shares
// (redisSessions).
type sessionStore interface {
	// create starts a session for credential and returns its cookie value.
	create(ctx context.Context, credential string) (cookie string, se *session, err error)
	// get returns the session of cookie and restarts its idle time; nil
	// when it has none or it expired.
	get(ctx context.Context, cookie string) (*session, error)
	// end removes the session of cookie.
	end(ctx context.Context, cookie string) error
}

// session is a signed-in dashboard: the credential it signed in with, sent
// to the admin API in process, and its CSRF token.
type session struct {
	credential string
	csrf       string
	created    time.Time
	seen       time.Time
}

// memorySessions are the signed-in dashboards of this process, by the
// SHA-256 of their cookie.
type memorySessions struct {
	now func() time.Time
	mu  sync.Mutex // guards m
	m   map[[32]byte]*session
}

func newMemorySessions(now func() time.Time) *memorySessions {
	return &memorySessions{now: now, m: map[[32]byte]*session{}}
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *memorySessions) create(_ context.Context, credential string) (cookie string, se *session, err error) {
	now := s.now()
	cookie = randomToken()
	se = &session{credential: credential, csrf: randomToken(), created: now, seen: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked(now)
	if len(s.m) >= maxSessions {
		var oldest [32]byte
		var at time.Time
		for k, v := range s.m {
			if at.IsZero() || v.created.Before(at) {
				oldest, at = k, v.created
			}
		}
		delete(s.m, oldest)
	}
	s.m[sha256.Sum256([]byte(cookie))] = se
	return cookie, se, nil
}

func (s *memorySessions) get(_ context.Context, cookie string) (*session, error) {
	if cookie == "" {
		return nil, nil
	}
	now := s.now()
	k := sha256.Sum256([]byte(cookie))
	s.mu.Lock()
	defer s.mu.Unlock()
	se, ok := s.m[k]
	if !ok {
		return nil, nil
	}
	if now.Sub(se.seen) > sessionIdle || now.Sub(se.created) > sessionMax {
		delete(s.m, k)
		return nil, nil
	}
	se.seen = now
	return se, nil
}

func (s *memorySessions) end(_ context.Context, cookie string) error {
	s.mu.Lock()
	delete(s.m, sha256.Sum256([]byte(cookie)))
	s.mu.Unlock()
	return nil
}

func (s *memorySessions) expireLocked(now time.Time) {
	for k, se := range s.m {
		if now.Sub(se.seen) > sessionIdle || now.Sub(se.created) > sessionMax {
			delete(s.m, k)
		}
	}
}

// checkCSRF reports whether token is the session's CSRF token.
func (se *session) checkCSRF(token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(se.csrf)) == 1
}

const (
	// signInFailures failed sign-ins from one address within signInWindow
	// make it wait for the rest of the window.
	signInFailures = 10
	signInWindow   = time.Minute
	// maxThrottled bounds the addresses remembered.
	maxThrottled = 10000
)

// throttle counts failed sign-ins by client address, so that the admin key
// cannot be guessed through the dashboard faster than the admin API allows.
type throttle struct {
	now func() time.Time
	mu  sync.Mutex // guards m
	m   map[string]*failures
}

type failures struct {
	n     int
	start time.Time
}

func newThrottle(now func() time.Time) *throttle {
	return &throttle{now: now, m: map[string]*failures{}}
}

// wait returns how long addr must wait before it may try again; 0: now.
func (t *throttle) wait(addr string) time.Duration {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.m[addr]
	if !ok {
		return 0
	}
	if end := f.start.Add(signInWindow); !now.Before(end) {
		delete(t.m, addr)
		return 0
	} else if f.n >= signInFailures {
		return end.Sub(now)
	}
	return 0
}

// fail counts a failed sign-in from addr.
func (t *throttle) fail(addr string) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.m[addr]
	if !ok || !now.Before(f.start.Add(signInWindow)) {
		if len(t.m) >= maxThrottled {
			clear(t.m)
		}
		f = &failures{start: now}
		t.m[addr] = f
	}
	f.n++
}

package webui

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
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

// session is a signed-in dashboard: the credential it signed in with, kept
// in memory only and sent to the admin API in process, and its CSRF token.
type session struct {
	credential string
	csrf       string
	created    time.Time
	seen       time.Time
}

// sessions are the signed-in dashboards, by the SHA-256 of their cookie.
type sessions struct {
	now func() time.Time
	mu  sync.Mutex // guards m
	m   map[[32]byte]*session
}

func newSessions(now func() time.Time) *sessions {
	return &sessions{now: now, m: map[[32]byte]*session{}}
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session for credential and returns its cookie value.
func (s *sessions) create(credential string) (cookie string, se *session) {
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
	return cookie, se
}

// get returns the session of cookie, or nil when it has none or it expired.
func (s *sessions) get(cookie string) *session {
	if cookie == "" {
		return nil
	}
	now := s.now()
	k := sha256.Sum256([]byte(cookie))
	s.mu.Lock()
	defer s.mu.Unlock()
	se, ok := s.m[k]
	if !ok {
		return nil
	}
	if now.Sub(se.seen) > sessionIdle || now.Sub(se.created) > sessionMax {
		delete(s.m, k)
		return nil
	}
	se.seen = now
	return se
}

// end removes the session of cookie.
func (s *sessions) end(cookie string) {
	s.mu.Lock()
	delete(s.m, sha256.Sum256([]byte(cookie)))
	s.mu.Unlock()
}

func (s *sessions) expireLocked(now time.Time) {
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

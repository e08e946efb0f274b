package simulator

import (
	"sync"
	"time"
)

// windowLength is the span of Azure OpenAI's tokens-per-minute and
// requests-per-minute limits.
const windowLength = time.Minute

// window enforces a deployment's limits over a sliding 60-second window: a
// request is admitted if the tokens and the requests admitted in the 60
// seconds before it, plus its own, stay within the limits. Rejected requests
// are not recorded, as in Azure OpenAI. It is safe for concurrent use.
type window struct {
	tpm, rpm int // 0 means unlimited

	mu      sync.Mutex  // guards the fields below
	entries []admission // admitted requests, oldest first
	tokens  int         // sum of entries' tokens
}

// admission is one admitted request.
type admission struct {
	at     time.Time
	tokens int
}

// verdict is the outcome of asking a window to admit a request.
type verdict struct {
	ok               bool
	tokensLeft       int           // tokens left in the window after this request (when tpm > 0)
	requestsLeft     int           // requests left in the window after this request (when rpm > 0)
	wait             time.Duration // when !ok: until the request would fit
	tokensExceeded   bool          // when !ok: the token limit, not the request limit, refused it
	limitThatRefused int
}

// admit admits a request that costs tokens at now, or says how long to wait.
func (w *window) admit(now time.Time, tokens int) verdict {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.expireLocked(now)
	if w.rpm > 0 && len(w.entries)+1 > w.rpm {
		// The oldest entry must leave before one more request fits.
		return verdict{wait: w.entries[len(w.entries)-w.rpm].at.Add(windowLength).Sub(now), limitThatRefused: w.rpm}
	}
	if w.tpm > 0 && w.tokens+tokens > w.tpm {
		return verdict{wait: w.tokenWaitLocked(now, tokens), tokensExceeded: true, limitThatRefused: w.tpm}
	}
	w.entries = append(w.entries, admission{at: now, tokens: tokens})
	w.tokens += tokens
	return verdict{ok: true, tokensLeft: w.tpm - w.tokens, requestsLeft: w.rpm - len(w.entries)}
}

// expireLocked drops the entries older than the window.
func (w *window) expireLocked(now time.Time) {
	cut := now.Add(-windowLength)
	i := 0
	for i < len(w.entries) && !w.entries[i].at.After(cut) {
		w.tokens -= w.entries[i].tokens
		i++
	}
	// Reslicing from the front is O(1); append copies the live entries to
	// a new array only when it runs out of room, so each entry is copied
	// O(1) times on average.
	w.entries = w.entries[i:]
}

// tokenWaitLocked returns how long until enough tokens have left the window
// for a request of tokens to fit. A request larger than the limit never fits;
// it is told to wait a whole window, as a client cannot do better.
func (w *window) tokenWaitLocked(now time.Time, tokens int) time.Duration {
	if tokens > w.tpm {
		return windowLength
	}
	excess := w.tokens + tokens - w.tpm
	for _, e := range w.entries {
		excess -= e.tokens
		if excess <= 0 {
			return e.at.Add(windowLength).Sub(now)
		}
	}
	return windowLength
}

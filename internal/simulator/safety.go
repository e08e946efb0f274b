package simulator

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// The simulator also serves the Azure AI Content Safety text APIs
// (text:analyze, text:shieldPrompt, text blocklists) under /contentsafety/
// and the Azure AI Language PII API under /language/, as an Azure AI
// services multi-service resource does, deterministically:
//
//   - a marker word x<category><severity>, such as xviolence6 or xhate2
//     (any case), scores its category at that severity (rounded down to
//     0, 2, 4 or 6 for FourSeverityLevels); other text scores 0;
//   - blocklists are created and filled through the real blocklist API and
//     match their items' text case-insensitively;
//   - Prompt Shields detects an attack in prompts with known jailbreak
//     phrasings ("ignore previous instructions", "you are now DAN", ...);
//   - text over 10,000 characters is refused with 400, as the service does;
//   - PII recognition finds e-mail addresses, phone numbers and a few
//     names (Person), with offsets in the string index type asked for.
//
// Faults apply as to model requests (AddedLatency, Hang, Disconnect,
// ErrorRate, RetryAfter); a Content Safety key is read from
// Ocp-Apim-Subscription-Key or Authorization: Bearer.

// safetyState is the Content Safety service's blocklists.
type safetyState struct {
	mu     sync.Mutex            // guards lists
	lists  map[string]*blocklist // by name
	nextID int                   // item ids handed out
}

type blocklist struct {
	Name        string          `json:"blocklistName"`
	Description string          `json:"description,omitempty"`
	items       []blocklistItem // in insertion order
}

type blocklistItem struct {
	ID          string `json:"blocklistItemId"`
	Description string `json:"description,omitempty"`
	Text        string `json:"text"`
}

// maxSafetyText is the service's limit on text:analyze and shieldPrompt text.
const maxSafetyText = 10000

var (
	severityMarker = regexp.MustCompile(`(?i)\bx(hate|selfharm|sexual|violence)([0-7])\b`)
	jailbreaks     = []string{"ignore previous instructions", "ignore all previous instructions", "ignore your instructions",
		"disregard the system prompt", "disregard previous instructions", "you are now dan", "do anything now",
		"pretend you have no restrictions", "developer mode enabled"}
	simEmail  = regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}`)
	simPhone  = regexp.MustCompile(`\+?\d[\d ()-]{6,}\d`)
	simPerson = regexp.MustCompile(`\b(?:Jane|John|Alice|Bob|Maria|Ahmed|Wei|Olga)\s+[A-Z][a-z]+\b`)
)

// isSafetyPath reports whether path is one of the Content Safety or
// Language APIs.
func isSafetyPath(path string) bool {
	return strings.HasPrefix(path, "/contentsafety/") || strings.HasPrefix(path, "/language/")
}

// serveSafety answers a Content Safety or Language request.
func (s *Simulator) serveSafety(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("apim-request-id", newUUID())
	if len(s.key) > 0 {
		got := r.Header.Get("Ocp-Apim-Subscription-Key")
		if got == "" {
			got, _ = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		}
		if subtle.ConstantTimeCompare([]byte(got), s.key) != 1 {
			safetyError(w, http.StatusUnauthorized, "401", "Access denied due to invalid subscription key or wrong API endpoint.")
			return
		}
	}
	// The body is read first: net/http notices a client that went away
	// (and ends r's context, which a Hang waits on) only once it is read.
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		safetyError(w, http.StatusRequestEntityTooLarge, "InvalidRequestBody", "The request body is too large.")
		return
	}
	if !s.safetyFaults(w, r) {
		return
	}
	st := s.safetyState()
	p := r.URL.Path
	switch {
	case p == "/contentsafety/text:analyze" && r.Method == http.MethodPost:
		st.analyze(w, body)
	case p == "/contentsafety/text:shieldPrompt" && r.Method == http.MethodPost:
		shieldPrompt(w, body)
	case p == "/language/:analyze-text" && r.Method == http.MethodPost:
		analyzePII(w, body)
	case p == "/contentsafety/text/blocklists" && r.Method == http.MethodGet:
		st.listBlocklists(w)
	case strings.HasPrefix(p, "/contentsafety/text/blocklists/"):
		st.blocklistAPI(w, r, strings.TrimPrefix(p, "/contentsafety/text/blocklists/"), body)
	default:
		safetyError(w, http.StatusNotFound, "NotFound", "Resource not found.")
	}
}

// safetyState returns the service's state, made on first use.
func (s *Simulator) safetyState() *safetyState {
	s.safetyOnce.Do(func() { s.safety = &safetyState{lists: map[string]*blocklist{}} })
	return s.safety
}

// safetyFaults applies the simulator's faults to a safety request,
// reporting whether it goes on.
func (s *Simulator) safetyFaults(w http.ResponseWriter, r *http.Request) bool {
	f := s.faults.Load()
	if f.AddedLatency > 0 {
		t := time.NewTimer(f.AddedLatency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return false
		}
	}
	switch {
	case f.Hang:
		<-r.Context().Done()
		return false
	case f.Disconnect:
		panic(http.ErrAbortHandler)
	case f.RetryAfter > 0:
		w.Header().Set("Retry-After", strconv.Itoa(ceilSeconds(f.RetryAfter)))
		safetyError(w, http.StatusTooManyRequests, "TooManyRequests", "Rate limit is exceeded.")
		return false
	case f.ErrorRate > 0 && rand.Float64() < f.ErrorRate:
		safetyError(w, f.status(), "InternalServerError", "The service failed to process the request.")
		return false
	}
	return true
}

func safetyError(w http.ResponseWriter, status int, code, msg string) {
	writeSafetyJSON(w, status, map[string]any{"error": map[string]any{"code": code, "message": msg}})
}

func writeSafetyJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func (st *safetyState) analyze(w http.ResponseWriter, body []byte) {
	var req struct {
		Text               *string  `json:"text"`
		Categories         []string `json:"categories"`
		BlocklistNames     []string `json:"blocklistNames"`
		HaltOnBlocklistHit bool     `json:"haltOnBlocklistHit"`
		OutputType         string   `json:"outputType"`
	}
	if err := json.Unmarshal(body, &req); err != nil || req.Text == nil {
		safetyError(w, http.StatusBadRequest, "InvalidRequestBody", "The request body is invalid: text is required.")
		return
	}
	if n := utf8.RuneCountInString(*req.Text); n > maxSafetyText {
		safetyError(w, http.StatusBadRequest, "InvalidRequestBody",
			fmt.Sprintf("The text is %d characters long; at most %d are allowed.", n, maxSafetyText))
		return
	}
	if req.OutputType == "" {
		req.OutputType = "FourSeverityLevels"
	}
	if req.OutputType != "FourSeverityLevels" && req.OutputType != "EightSeverityLevels" {
		safetyError(w, http.StatusBadRequest, "InvalidRequestBody", "outputType must be FourSeverityLevels or EightSeverityLevels.")
		return
	}
	all := []string{"Hate", "SelfHarm", "Sexual", "Violence"}
	if len(req.Categories) == 0 {
		req.Categories = all
	}
	for _, c := range req.Categories {
		if !slices.Contains(all, c) {
			safetyError(w, http.StatusBadRequest, "InvalidRequestBody", "Unknown category "+strconv.Quote(c)+".")
			return
		}
	}
	type match struct {
		Name string `json:"blocklistName"`
		ID   string `json:"blocklistItemId"`
		Text string `json:"blocklistItemText"`
	}
	matches := []match{}
	lower := strings.ToLower(*req.Text)
	st.mu.Lock()
	for _, name := range req.BlocklistNames {
		bl, ok := st.lists[name]
		if !ok {
			st.mu.Unlock()
			safetyError(w, http.StatusNotFound, "NotFound", "Blocklist "+strconv.Quote(name)+" does not exist.")
			return
		}
		for _, it := range bl.items {
			if it.Text != "" && strings.Contains(lower, strings.ToLower(it.Text)) {
				matches = append(matches, match{bl.Name, it.ID, it.Text})
			}
		}
	}
	st.mu.Unlock()
	type analysis struct {
		Category string `json:"category"`
		Severity int    `json:"severity"`
	}
	cats := []analysis{}
	if !(req.HaltOnBlocklistHit && len(matches) > 0) {
		sev := map[string]int{}
		for _, m := range severityMarker.FindAllStringSubmatch(*req.Text, -1) {
			c := map[string]string{"hate": "Hate", "selfharm": "SelfHarm", "sexual": "Sexual", "violence": "Violence"}[strings.ToLower(m[1])]
			sev[c] = max(sev[c], int(m[2][0]-'0'))
		}
		for _, c := range req.Categories {
			v := sev[c]
			if req.OutputType == "FourSeverityLevels" {
				v -= v % 2
			}
			cats = append(cats, analysis{c, v})
		}
	}
	writeSafetyJSON(w, http.StatusOK, map[string]any{"blocklistsMatch": matches, "categoriesAnalysis": cats})
}

// attack reports whether text carries a known jailbreak phrasing.
func attack(text string) bool {
	lower := strings.Join(strings.Fields(strings.ToLower(text)), " ")
	for _, j := range jailbreaks {
		if strings.Contains(lower, j) {
			return true
		}
	}
	return false
}

func shieldPrompt(w http.ResponseWriter, body []byte) {
	var req struct {
		UserPrompt string   `json:"userPrompt"`
		Documents  []string `json:"documents"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		safetyError(w, http.StatusBadRequest, "InvalidRequestBody", "The request body is invalid.")
		return
	}
	total := utf8.RuneCountInString(req.UserPrompt)
	for _, d := range req.Documents {
		total += utf8.RuneCountInString(d)
	}
	if total > maxSafetyText {
		safetyError(w, http.StatusBadRequest, "InvalidRequestBody",
			fmt.Sprintf("The prompt and documents are %d characters long; at most %d are allowed.", total, maxSafetyText))
		return
	}
	docs := []map[string]bool{}
	for _, d := range req.Documents {
		docs = append(docs, map[string]bool{"attackDetected": attack(d)})
	}
	writeSafetyJSON(w, http.StatusOK, map[string]any{
		"userPromptAnalysis": map[string]bool{"attackDetected": attack(req.UserPrompt)}, "documentsAnalysis": docs})
}

func (st *safetyState) listBlocklists(w http.ResponseWriter) {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := []*blocklist{}
	for _, name := range slices.Sorted(maps.Keys(st.lists)) {
		out = append(out, st.lists[name])
	}
	writeSafetyJSON(w, http.StatusOK, map[string]any{"value": out})
}

// blocklistAPI serves /contentsafety/text/blocklists/{name}[...].
func (st *safetyState) blocklistAPI(w http.ResponseWriter, r *http.Request, rest string, body []byte) {
	name, action, _ := strings.Cut(rest, ":")
	name, sub, _ := strings.Cut(name, "/")
	if name == "" || len(name) > 64 {
		safetyError(w, http.StatusBadRequest, "InvalidRequestBody", "Invalid blocklist name.")
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	bl := st.lists[name]
	if bl == nil && !(action == "" && sub == "" && r.Method == http.MethodPatch) {
		safetyError(w, http.StatusNotFound, "NotFound", "Blocklist "+strconv.Quote(name)+" does not exist.")
		return
	}
	switch {
	case action == "" && sub == "" && r.Method == http.MethodPatch:
		var req struct {
			Description string `json:"description"`
		}
		_ = json.Unmarshal(body, &req)
		status := http.StatusOK
		if bl == nil {
			bl, status = &blocklist{Name: name}, http.StatusCreated
			st.lists[name] = bl
		}
		bl.Description = req.Description
		writeSafetyJSON(w, status, bl)
	case action == "" && sub == "" && r.Method == http.MethodGet:
		writeSafetyJSON(w, http.StatusOK, bl)
	case action == "" && sub == "" && r.Method == http.MethodDelete:
		delete(st.lists, name)
		w.WriteHeader(http.StatusNoContent)
	case action == "" && sub == "blocklistItems" && r.Method == http.MethodGet:
		writeSafetyJSON(w, http.StatusOK, map[string]any{"value": append([]blocklistItem{}, bl.items...)})
	case action == "addOrUpdateBlocklistItems" && r.Method == http.MethodPost:
		var req struct {
			Items []blocklistItem `json:"blocklistItems"`
		}
		if err := json.Unmarshal(body, &req); err != nil || len(req.Items) == 0 {
			safetyError(w, http.StatusBadRequest, "InvalidRequestBody", "blocklistItems is required.")
			return
		}
		for i, it := range req.Items {
			if it.Text == "" || utf8.RuneCountInString(it.Text) > 128 {
				safetyError(w, http.StatusBadRequest, "InvalidRequestBody", "An item's text must be 1 to 128 characters.")
				return
			}
			j := slices.IndexFunc(bl.items, func(x blocklistItem) bool { return x.Text == it.Text })
			if j >= 0 {
				bl.items[j].Description = it.Description
				req.Items[i] = bl.items[j]
				continue
			}
			st.nextID++
			it.ID = fmt.Sprintf("%08x-0000-4000-8000-%012x", st.nextID, st.nextID)
			bl.items = append(bl.items, it)
			req.Items[i] = it
		}
		writeSafetyJSON(w, http.StatusOK, map[string]any{"blocklistItems": req.Items})
	case action == "removeBlocklistItems" && r.Method == http.MethodPost:
		var req struct {
			IDs []string `json:"blocklistItemIds"`
		}
		_ = json.Unmarshal(body, &req)
		bl.items = slices.DeleteFunc(bl.items, func(x blocklistItem) bool { return slices.Contains(req.IDs, x.ID) })
		w.WriteHeader(http.StatusNoContent)
	default:
		safetyError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "Method not allowed.")
	}
}

// analyzePII answers a Language analyze-text request of kind
// PiiEntityRecognition.
func analyzePII(w http.ResponseWriter, body []byte) {
	var req struct {
		Kind       string `json:"kind"`
		Parameters struct {
			PiiCategories   []string `json:"piiCategories"`
			StringIndexType string   `json:"stringIndexType"`
		} `json:"parameters"`
		AnalysisInput struct {
			Documents []struct {
				ID   string `json:"id"`
				Text string `json:"text"`
			} `json:"documents"`
		} `json:"analysisInput"`
	}
	if err := json.Unmarshal(body, &req); err != nil || req.Kind != "PiiEntityRecognition" {
		safetyError(w, http.StatusBadRequest, "InvalidRequest", "kind must be PiiEntityRecognition.")
		return
	}
	if n := len(req.AnalysisInput.Documents); n == 0 || n > 5 {
		safetyError(w, http.StatusBadRequest, "InvalidRequest", "A request holds 1 to 5 documents.")
		return
	}
	type entity struct {
		Text     string  `json:"text"`
		Category string  `json:"category"`
		Offset   int     `json:"offset"`
		Length   int     `json:"length"`
		Score    float64 `json:"confidenceScore"`
	}
	type doc struct {
		ID           string   `json:"id"`
		RedactedText string   `json:"redactedText"`
		Entities     []entity `json:"entities"`
		Warnings     []any    `json:"warnings"`
	}
	docs, errs := []doc{}, []any{}
	for _, d := range req.AnalysisInput.Documents {
		if utf8.RuneCountInString(d.Text) > 5120 {
			errs = append(errs, map[string]any{"id": d.ID, "error": map[string]string{"code": "InvalidArgument",
				"message": "Document text exceeds 5120 characters."}})
			continue
		}
		var es []entity
		red := []byte(d.Text)
		for cat, re := range map[string]*regexp.Regexp{"Email": simEmail, "PhoneNumber": simPhone, "Person": simPerson} {
			if len(req.Parameters.PiiCategories) > 0 && !slices.Contains(req.Parameters.PiiCategories, cat) {
				continue
			}
			for _, loc := range re.FindAllStringIndex(d.Text, -1) {
				off := indexUnits(d.Text[:loc[0]], req.Parameters.StringIndexType)
				es = append(es, entity{Text: d.Text[loc[0]:loc[1]], Category: cat, Offset: off,
					Length: indexUnits(d.Text[loc[0]:loc[1]], req.Parameters.StringIndexType), Score: 0.9})
				for i := loc[0]; i < loc[1]; i++ {
					red[i] = '*'
				}
			}
		}
		slices.SortFunc(es, func(a, b entity) int { return a.Offset - b.Offset })
		docs = append(docs, doc{ID: d.ID, RedactedText: string(red), Entities: append([]entity{}, es...), Warnings: []any{}})
	}
	writeSafetyJSON(w, http.StatusOK, map[string]any{"kind": "PiiEntityRecognitionResults",
		"results": map[string]any{"documents": docs, "errors": errs, "modelVersion": "2023-09-01"}})
}

// indexUnits measures s in the string index type of the Language API:
// UTF-16 code units for Utf16CodeUnit, else code points.
func indexUnits(s, typ string) int {
	if typ == "Utf16CodeUnit" {
		return len(utf16.Encode([]rune(s)))
	}
	return utf8.RuneCountInString(s)
}

// Package safety checks text with a service speaking the Azure AI Content
// Safety REST API: harm categories with severity thresholds and blocklists
// (text:analyze), prompt attacks (text:shieldPrompt). It splits text at the
// service's size limit and cuts answers into overlapping windows as they
// stream. It also speaks the Azure AI Language PII API, which the same
// multi-service endpoints serve, for the pii package.
package safety

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sluice-gateway/sluice/internal/secret"
)

// MaxText is the most characters (Unicode code points) the service reads in
// one text:analyze or text:shieldPrompt call.
const MaxText = 10000

// A Credential authenticates Sluice to the service by setting a header.
type Credential interface {
	Apply(ctx context.Context, h http.Header) error
}

// APIKey is the credential of a Content Safety key:
// Ocp-Apim-Subscription-Key.
func APIKey(key secret.Value) Credential { return apiKey{key} }

type apiKey struct{ key secret.Value }

func (k apiKey) Apply(_ context.Context, h http.Header) error {
	h.Set("Ocp-Apim-Subscription-Key", k.key.Reveal())
	return nil
}

// Client calls one service. It is safe for concurrent use.
type Client struct {
	// Name identifies the service in errors, logs and metrics.
	Name string
	base string // the endpoint, without a trailing slash
	// APIVersion is the api-version of Content Safety calls.
	apiVersion string
	cred       Credential
	http       *http.Client
	timeout    time.Duration
}

// Options configure a Client.
type Options struct {
	Name       string
	URL        string
	APIVersion string
	Credential Credential
	// Timeout bounds each call.
	Timeout time.Duration
	// HTTP is the client the calls go through; nil: a client of its own.
	HTTP *http.Client
}

// NewClient returns a client of the service at o.URL.
func NewClient(o Options) (*Client, error) {
	u, err := url.Parse(o.URL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("safety: %s: bad url", o.Name)
	}
	c := &Client{Name: o.Name, base: strings.TrimRight(o.URL, "/"), apiVersion: o.APIVersion, cred: o.Credential,
		http: o.HTTP, timeout: o.Timeout}
	if c.http == nil {
		c.http = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second,
			ForceAttemptHTTP2: true}}
	}
	if c.apiVersion == "" {
		c.apiVersion = "2024-09-01"
	}
	return c, nil
}

// CloseIdle closes the client's idle connections.
func (c *Client) CloseIdle() { c.http.CloseIdleConnections() }

// ServiceError is a call the service answered with an error status, or
// could not be made: its status (0 when there was no answer) and the
// service's error code. It never carries the text checked.
type ServiceError struct {
	Service string
	Status  int
	Code    string
	Err     error
}

func (e *ServiceError) Error() string {
	switch {
	case e.Err != nil:
		return fmt.Sprintf("safety service %s: %v", e.Service, e.Err)
	default:
		return fmt.Sprintf("safety service %s: status %d %s", e.Service, e.Status, e.Code)
	}
}

func (e *ServiceError) Unwrap() error { return e.Err }

// ErrTimeout is the cause of a call that took longer than the timeout.
var ErrTimeout = errors.New("timed out")

// post sends body as JSON to path and decodes the answer into out.
func (c *Client) post(ctx context.Context, path string, query string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, c.timeout, ErrTimeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path+"?"+query, bytes.NewReader(b))
	if err != nil {
		return &ServiceError{Service: c.Name, Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	if c.cred != nil {
		if err := c.cred.Apply(ctx, req.Header); err != nil {
			return &ServiceError{Service: c.Name, Err: fmt.Errorf("credential: %w", err)}
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, ErrTimeout) {
			err = ErrTimeout
		}
		return &ServiceError{Service: c.Name, Err: err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		if errors.Is(context.Cause(ctx), ErrTimeout) {
			err = ErrTimeout
		}
		return &ServiceError{Service: c.Name, Err: err}
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		_ = json.Unmarshal(raw, &e)
		return &ServiceError{Service: c.Name, Status: resp.StatusCode, Code: e.Error.Code}
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return &ServiceError{Service: c.Name, Status: resp.StatusCode, Err: fmt.Errorf("reading the answer: %w", err)}
	}
	return nil
}

// AnalyzeRequest is a text:analyze request.
type AnalyzeRequest struct {
	Text               string   `json:"text"`
	Categories         []string `json:"categories,omitempty"`
	BlocklistNames     []string `json:"blocklistNames,omitempty"`
	HaltOnBlocklistHit bool     `json:"haltOnBlocklistHit,omitempty"`
	OutputType         string   `json:"outputType,omitempty"`
}

// AnalyzeResult is a text:analyze answer.
type AnalyzeResult struct {
	BlocklistsMatch []struct {
		BlocklistName string `json:"blocklistName"`
		ItemID        string `json:"blocklistItemId"`
		ItemText      string `json:"blocklistItemText"`
	} `json:"blocklistsMatch"`
	CategoriesAnalysis []struct {
		Category string `json:"category"`
		Severity int    `json:"severity"`
	} `json:"categoriesAnalysis"`
}

// Analyze calls text:analyze.
func (c *Client) Analyze(ctx context.Context, r AnalyzeRequest) (AnalyzeResult, error) {
	var out AnalyzeResult
	err := c.post(ctx, "/contentsafety/text:analyze", "api-version="+url.QueryEscape(c.apiVersion), r, &out)
	return out, err
}

// ShieldResult is a text:shieldPrompt answer.
type ShieldResult struct {
	UserPromptAnalysis struct {
		AttackDetected bool `json:"attackDetected"`
	} `json:"userPromptAnalysis"`
	DocumentsAnalysis []struct {
		AttackDetected bool `json:"attackDetected"`
	} `json:"documentsAnalysis"`
}

// ShieldPrompt calls text:shieldPrompt with a user prompt and documents.
func (c *Client) ShieldPrompt(ctx context.Context, userPrompt string, documents []string) (ShieldResult, error) {
	var out ShieldResult
	body := struct {
		UserPrompt string   `json:"userPrompt"`
		Documents  []string `json:"documents"`
	}{userPrompt, documents}
	if body.Documents == nil {
		body.Documents = []string{}
	}
	err := c.post(ctx, "/contentsafety/text:shieldPrompt", "api-version="+url.QueryEscape(c.apiVersion), body, &out)
	return out, err
}

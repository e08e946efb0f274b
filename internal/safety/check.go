package safety

import (
	"context"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"
)

// Policy is what a product checks.
type Policy struct {
	// Categories are the harm categories checked, each with the severity
	// at or above which text is refused.
	Categories map[string]int
	// OutputType is FourSeverityLevels or EightSeverityLevels.
	OutputType string
	// Blocklists are the service's blocklists checked.
	Blocklists []string
	// Shield checks prompts with Prompt Shields.
	Shield bool
}

// Verdict is the outcome of a check.
type Verdict struct {
	// Blocked says the text is refused.
	Blocked bool
	// Reason names why, for the client and the log, never quoting the
	// text: a category ("Violence"), a blocklist ("blocklist
	// banned-terms") or "prompt attack".
	Reason string
	// Kind is category, blocklist or attack, for metrics.
	Kind string
}

// categories returns the policy's categories, sorted.
func (p Policy) categories() []string {
	out := make([]string, 0, len(p.Categories))
	for c := range p.Categories {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// CheckPrompt checks the texts of a prompt: text:analyze on each piece of
// at most MaxText characters, and text:shieldPrompt when the policy asks,
// all at once. The first refusal found wins; an error of any call is
// returned when nothing was refused.
func (c *Client) CheckPrompt(ctx context.Context, p Policy, texts []string) (Verdict, error) {
	return c.check(ctx, p, strings.Join(texts, "\n"), p.Shield)
}

// CheckText checks a piece of an answer with text:analyze.
func (c *Client) CheckText(ctx context.Context, p Policy, text string) (Verdict, error) {
	return c.check(ctx, p, text, false)
}

func (c *Client) check(ctx context.Context, p Policy, text string, shield bool) (Verdict, error) {
	if strings.TrimSpace(text) == "" {
		return Verdict{}, nil
	}
	pieces := Split(text, MaxText)
	analyze := len(p.Categories) > 0 || len(p.Blocklists) > 0
	calls := len(pieces)
	if !analyze {
		calls = 0
	}
	if shield {
		calls += len(pieces)
	}
	type result struct {
		v   Verdict
		err error
	}
	results := make([]result, calls)
	var wg sync.WaitGroup
	i := 0
	cats := p.categories()
	for _, piece := range pieces {
		if analyze {
			k := i
			wg.Go(func() {
				v, err := c.analyze(ctx, p, cats, piece)
				results[k] = result{v, err}
			})
			i++
		}
		if shield {
			k := i
			wg.Go(func() {
				v, err := c.shield(ctx, piece)
				results[k] = result{v, err}
			})
			i++
		}
	}
	wg.Wait()
	var firstErr error
	for _, r := range results {
		if r.v.Blocked {
			return r.v, nil
		}
		if r.err != nil && firstErr == nil {
			firstErr = r.err
		}
	}
	return Verdict{}, firstErr
}

func (c *Client) analyze(ctx context.Context, p Policy, cats []string, text string) (Verdict, error) {
	res, err := c.Analyze(ctx, AnalyzeRequest{Text: text, Categories: cats, BlocklistNames: p.Blocklists,
		HaltOnBlocklistHit: len(p.Blocklists) > 0, OutputType: p.OutputType})
	if err != nil {
		return Verdict{}, err
	}
	if len(res.BlocklistsMatch) > 0 {
		return Verdict{Blocked: true, Reason: "blocklist " + res.BlocklistsMatch[0].BlocklistName, Kind: "blocklist"}, nil
	}
	for _, ca := range res.CategoriesAnalysis {
		if t, ok := p.Categories[ca.Category]; ok && ca.Severity >= t {
			return Verdict{Blocked: true, Reason: ca.Category, Kind: "category"}, nil
		}
	}
	return Verdict{}, nil
}

func (c *Client) shield(ctx context.Context, text string) (Verdict, error) {
	res, err := c.ShieldPrompt(ctx, text, nil)
	if err != nil {
		return Verdict{}, err
	}
	if res.UserPromptAnalysis.AttackDetected {
		return Verdict{Blocked: true, Reason: "prompt attack", Kind: "attack"}, nil
	}
	return Verdict{}, nil
}

// Split cuts text into pieces of at most max characters (code points),
// preferring to cut after a space or line end in the last tenth of a piece
// so that words stay whole.
func Split(text string, max int) []string {
	if utf8.RuneCountInString(text) <= max {
		return []string{text}
	}
	var out []string
	for text != "" {
		n, end := 0, 0
		for end < len(text) && n < max {
			_, w := utf8.DecodeRuneInString(text[end:])
			end += w
			n++
		}
		if end < len(text) {
			floor := end - len(text[:end])/10
			if i := strings.LastIndexAny(text[:end], " \n"); i >= floor && i > 0 {
				end = i + 1
			}
		}
		out = append(out, text[:end])
		text = text[end:]
	}
	return out
}

package config

import (
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/sluice-gateway/sluice/internal/secret"
)

// SafetyService is a service speaking the Azure AI Content Safety REST API
// (text:analyze, text:shieldPrompt, text blocklists), such as an Azure AI
// Content Safety resource or an Azure AI services multi-service resource;
// the latter also serves the Azure AI Language PII API that
// products[].pii.service may use.
type SafetyService struct {
	// Name identifies the service in products[].content_safety.service and
	// products[].pii.service, and in metrics. Required.
	Name string `yaml:"name" json:"name"`
	// URL is the resource's endpoint, such as
	// https://my-resource.cognitiveservices.azure.com; https, or http on a
	// loopback address. Required.
	URL string `yaml:"url" json:"url"`
	// Auth is how Sluice authenticates to the service. Required.
	Auth SafetyAuth `yaml:"auth" json:"auth"`
	// Timeout bounds each call to the service; beyond it the call has
	// failed and the product's on_error applies. Default 2s.
	Timeout Duration `yaml:"timeout" json:"timeout"`
	// APIVersion is the api-version of Content Safety calls. Default
	// 2024-09-01.
	APIVersion string `yaml:"api_version" json:"api_version"`
}

// SafetyAuth is a content safety service's credential: exactly one of
// APIKey and ManagedIdentity.
type SafetyAuth struct {
	// APIKey is sent as Ocp-Apim-Subscription-Key. Never logged.
	APIKey secret.Value `yaml:"api_key" json:"api_key"`
	// ManagedIdentity gets an Entra ID token from the host's managed
	// identity, as for backends; its resource defaults to
	// https://cognitiveservices.azure.com.
	ManagedIdentity *ManagedIdentity `yaml:"managed_identity" json:"managed_identity,omitempty"`
}

// ContentSafety is a product's content safety: its prompts, and with
// Completions its answers, are checked by a content_safety service.
type ContentSafety struct {
	// Service names an entry of content_safety. Required.
	Service string `yaml:"service" json:"service"`
	// ShieldPrompt refuses prompts that Prompt Shields finds to be an
	// attack (a jailbreak, instructions to ignore the system prompt).
	// Default false.
	ShieldPrompt bool `yaml:"shield_prompt" json:"shield_prompt"`
	// OutputType is the severity scale: FourSeverityLevels (0, 2, 4, 6) or
	// EightSeverityLevels (0 to 7). Default FourSeverityLevels.
	OutputType string `yaml:"output_type" json:"output_type"`
	// Categories are the harm categories checked (Hate, SelfHarm, Sexual,
	// Violence), each with the severity at or above which text is refused
	// (0 to 7). Default: all four at 4.
	Categories map[string]int `yaml:"categories" json:"categories"`
	// Blocklists are the service's text blocklists checked; a match is
	// refused. Default none.
	Blocklists []string `yaml:"blocklists" json:"blocklists,omitempty"`
	// Completions configures the checking of answers.
	Completions SafetyCompletions `yaml:"completions" json:"completions"`
	// OnError says what happens when the service fails or times out:
	// fail_closed refuses the prompt with 503 (and ends a stream as
	// filtered); fail_open lets it pass, counted in a metric and logged.
	// Default fail_closed.
	OnError string `yaml:"on_error" json:"on_error"`
}

// SafetyCompletions configures the checking of answers.
type SafetyCompletions struct {
	// Mode is off (answers are not checked), buffered (a non-streaming
	// answer is checked before it is sent, a stream is held until it is
	// complete and checked whole) or window (a stream is checked in
	// windows as it arrives: nothing after a violating window reaches the
	// client, and the stream ends with finish_reason content_filter).
	// Default off.
	Mode string `yaml:"mode" json:"mode"`
	// WindowSize is the characters per window in window mode. Default 1000.
	WindowSize int `yaml:"window_size" json:"window_size"`
	// WindowOverlap is how many characters of a window are checked again
	// at the start of the next, so that a phrase cut by a window's end is
	// seen whole. Default 100; less than window_size.
	WindowOverlap int `yaml:"window_overlap" json:"window_overlap"`
}

// PII is a product's masking of personal data: found in the prompt's text,
// replaced by placeholders such as <EMAIL_1> before the model sees it.
type PII struct {
	// Entities are the categories masked. Built in: Email, PhoneNumber,
	// CreditCardNumber (with the Luhn check), IBAN, IPAddress. Others (such
	// as Person, Address, Organization) need Service. Default: the five
	// built-in ones.
	Entities []string `yaml:"entities" json:"entities"`
	// Patterns are categories of the operator's own, found by a regular
	// expression (Go RE2 syntax).
	Patterns []PIIPattern `yaml:"patterns" json:"patterns,omitempty"`
	// Restore puts the values back in place of their placeholders in the
	// answer before the client sees it, streams included. Default false:
	// the client sees the placeholders.
	Restore bool `yaml:"restore" json:"restore"`
	// Service names an entry of content_safety whose endpoint also serves
	// the Azure AI Language API (/language/:analyze-text,
	// PiiEntityRecognition), for the entities that are not built in.
	// Default none.
	Service string `yaml:"service" json:"service,omitempty"`
	// OnError says what happens when Service fails: fail_closed refuses
	// the request with 503; fail_open sends it masked by the built-in
	// recognisers and patterns only. Default fail_closed.
	OnError string `yaml:"on_error" json:"on_error"`
}

// PIIPattern is a category found by a regular expression.
type PIIPattern struct {
	// Category names the placeholders: EmployeeId gives <EMPLOYEE_ID_1>.
	// Required.
	Category string `yaml:"category" json:"category"`
	// Regex is the expression (Go RE2 syntax). Required.
	Regex string `yaml:"regex" json:"regex"`
}

// Defaults of the guardrails.
const (
	defaultSafetyTimeout    = 2 * time.Second
	defaultSafetyAPIVersion = "2024-09-01"
	defaultOutputType       = "FourSeverityLevels"
	defaultSafetyMode       = "off"
	defaultWindowSize       = 1000
	defaultWindowOverlap    = 100
	defaultGuardOnError     = "fail_closed"
	defaultSeverity         = 4
)

// HarmCategories are the Content Safety text categories.
var HarmCategories = []string{"Hate", "SelfHarm", "Sexual", "Violence"}

// BuiltInPII are the PII categories recognised without a service.
var BuiltInPII = []string{"Email", "PhoneNumber", "CreditCardNumber", "IBAN", "IPAddress"}

// guardDefaults fills the content_safety services and the products'
// content_safety and pii.
func (d defaulter) guard(c *Config) {
	for i := range c.ContentSafety {
		s, path := &c.ContentSafety[i], index("content_safety", i)
		d.dur(field(path, "timeout"), &s.Timeout, defaultSafetyTimeout)
		d.str(field(path, "api_version"), &s.APIVersion, defaultSafetyAPIVersion)
		if mi := s.Auth.ManagedIdentity; mi != nil {
			d.str(field(path, "auth.managed_identity.resource"), &mi.Resource, defaultMIResource)
		}
	}
	for i := range c.Products {
		pr, path := &c.Products[i], index("products", i)
		if cs := pr.ContentSafety; cs != nil {
			cp := field(path, "content_safety")
			d.str(field(cp, "output_type"), &cs.OutputType, defaultOutputType)
			d.set(field(cp, "categories"), cs.Categories == nil, func() {
				cs.Categories = map[string]int{}
				for _, k := range HarmCategories {
					cs.Categories[k] = defaultSeverity
				}
			})
			d.str(field(cp, "completions.mode"), &cs.Completions.Mode, defaultSafetyMode)
			d.num(field(cp, "completions.window_size"), &cs.Completions.WindowSize, defaultWindowSize)
			d.num(field(cp, "completions.window_overlap"), &cs.Completions.WindowOverlap, defaultWindowOverlap)
			d.str(field(cp, "on_error"), &cs.OnError, defaultGuardOnError)
		}
		if p := pr.PII; p != nil {
			pp := field(path, "pii")
			d.list(field(pp, "entities"), &p.Entities, BuiltInPII)
			d.str(field(pp, "on_error"), &p.OnError, defaultGuardOnError)
		}
	}
}

// validateGuard checks the content_safety services and the products'
// content_safety and pii.
func (c *Config) validateGuard(p *problems) {
	seen := names{}
	services := map[string]bool{}
	for i, s := range c.ContentSafety {
		path := index("content_safety", i)
		if checkName(p, field(path, "name"), s.Name) {
			seen.claim(p, field(path, "name"), s.Name)
			services[s.Name] = true
		}
		if s.URL == "" {
			p.add(field(path, "url"), "required")
		} else {
			checkFetchURL(p, field(path, "url"), s.URL)
		}
		switch {
		case s.Auth.APIKey.IsZero() && s.Auth.ManagedIdentity == nil:
			p.add(field(path, "auth.api_key"), "required (or managed_identity)")
		case !s.Auth.APIKey.IsZero() && s.Auth.ManagedIdentity != nil:
			p.add(field(path, "auth"), "sets api_key and managed_identity; give exactly one credential")
		default:
			checkAuth(p, field(path, "auth"), BackendAuth{APIKey: s.Auth.APIKey, ManagedIdentity: s.Auth.ManagedIdentity})
		}
		positive(p, field(path, "timeout"), s.Timeout)
		if s.APIVersion == "" || strings.ContainsAny(s.APIVersion, " &?#/") {
			p.add(field(path, "api_version"), "must be an api-version such as 2024-09-01")
		}
	}
	for i, pr := range c.Products {
		path := index("products", i)
		if cs := pr.ContentSafety; cs != nil {
			checkContentSafety(p, field(path, "content_safety"), cs, services)
		}
		if pi := pr.PII; pi != nil {
			checkPII(p, field(path, "pii"), pi, services)
		}
	}
}

func checkContentSafety(p *problems, path string, cs *ContentSafety, services map[string]bool) {
	if cs.Service == "" {
		p.add(field(path, "service"), "required: the name of a content_safety service")
	} else if !services[cs.Service] {
		p.add(field(path, "service"), "%q is not a content_safety service", cs.Service)
	}
	oneOf(p, field(path, "output_type"), cs.OutputType, "FourSeverityLevels", "EightSeverityLevels")
	for _, k := range sortedKeys(cs.Categories) {
		kp := key(field(path, "categories"), k)
		if !slices.Contains(HarmCategories, k) {
			p.add(kp, "unknown category; want %s", orList(HarmCategories))
		} else if v := cs.Categories[k]; v < 0 || v > 7 {
			p.add(kp, "a severity from 0 to 7")
		}
	}
	for j, b := range cs.Blocklists {
		if b == "" || len(b) > 64 || strings.ContainsAny(b, " /?#&:") {
			p.add(index(field(path, "blocklists"), j), "a blocklist name: up to 64 letters, digits, _ . -")
		}
	}
	if len(cs.Categories) == 0 && len(cs.Blocklists) == 0 && !cs.ShieldPrompt {
		p.add(path, "checks nothing: set categories, blocklists or shield_prompt")
	}
	cp := field(path, "completions")
	if oneOf(p, field(cp, "mode"), cs.Completions.Mode, "off", "buffered", "window") && cs.Completions.Mode == "window" {
		if w := cs.Completions.WindowSize; w < 10 || w > 10000 {
			p.add(field(cp, "window_size"), "from 10 to 10000 characters (the service reads at most 10000)")
		}
		if o := cs.Completions.WindowOverlap; o < 0 || o >= cs.Completions.WindowSize {
			p.add(field(cp, "window_overlap"), "from 0 to less than window_size")
		}
	}
	oneOf(p, field(path, "on_error"), cs.OnError, "fail_closed", "fail_open")
}

func checkPII(p *problems, path string, pi *PII, services map[string]bool) {
	if pi.Service != "" && !services[pi.Service] {
		p.add(field(path, "service"), "%q is not a content_safety service", pi.Service)
	}
	listed := map[string]bool{}
	for j, e := range pi.Entities {
		ep := index(field(path, "entities"), j)
		switch {
		case !categoryName.MatchString(e):
			p.add(ep, "a category name such as Email or Person")
		case listed[e]:
			p.add(ep, "%q is listed twice", e)
		case !slices.Contains(BuiltInPII, e) && pi.Service == "":
			p.add(ep, "%s is not built in (%s): it needs pii.service", e, strings.Join(BuiltInPII, ", "))
		}
		listed[e] = true
	}
	for j, pt := range pi.Patterns {
		pp := index(field(path, "patterns"), j)
		if !categoryName.MatchString(pt.Category) {
			p.add(field(pp, "category"), "required: a category name such as EmployeeId")
		}
		if pt.Regex == "" {
			p.add(field(pp, "regex"), "required")
		} else if re, err := regexp.Compile(pt.Regex); err != nil {
			p.add(field(pp, "regex"), "%v", err)
		} else if re.MatchString("") {
			p.add(field(pp, "regex"), "matches the empty string")
		}
	}
	if len(pi.Entities) == 0 && len(pi.Patterns) == 0 {
		p.add(path, "masks nothing: set entities or patterns")
	}
	oneOf(p, field(path, "on_error"), pi.OnError, "fail_closed", "fail_open")
}

// categoryName is a PII category: a letter, then letters and digits.
var categoryName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]{0,63}$`)

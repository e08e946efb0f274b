package simulator

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"strconv"
	"testing"

	"github.com/sluice-gateway/sluice/internal/tokens"
)

func embedOne(dims int, text string) []float32 {
	v := make([]float32, dims)
	embed(v, text)
	return v
}

func cosine(a, b []float32) float64 {
	var dot, na, nb float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	return dot / math.Sqrt(na*nb)
}

func TestEmbeddingSimilarity(t *testing.T) {
	tests := []struct {
		a, b     string
		min, max float64
	}{
		{"The cat sat on the mat by the door", "the cat sat on the mat by the window", 0.8, 1},
		{"Quarterly revenue grew in Europe and Asia", "Revenue grew quarterly in Asia and Europe!", 0.99, 1},
		{"How do I reset my password", "how do i reset my PASSWORD?", 0.99, 1},
		{"The cat sat on the mat", "Quarterly revenue grew in Europe", -0.3, 0.3},
		{"Kubernetes pod scheduling latency", "Baking sourdough bread at home", -0.3, 0.3},
		{"", "!!!", -0.3, 0.3},
	}
	for _, tt := range tests {
		for _, dims := range []int{1536, 256} {
			if got := cosine(embedOne(dims, tt.a), embedOne(dims, tt.b)); got < tt.min || got > tt.max {
				t.Errorf("cosine(%q, %q) at %d dims = %.3f; want %.2f to %.2f", tt.a, tt.b, dims, got, tt.min, tt.max)
			}
		}
	}
}

func TestAppendComponent(t *testing.T) {
	for _, tc := range []struct {
		x    float32
		want string
	}{
		{0, "0"}, {1, "1"}, {-1, "-1"}, {0.5, "0.5"}, {-0.25, "-0.25"},
		{0.0123456789, "0.0123456791"}, // the float32 nearest 0.0123456789
		{1e-12, "0"}, {-0.00008650473, "-0.0000865047"},
	} {
		got := string(appendComponent(nil, tc.x))
		if got != tc.want {
			t.Errorf("appendComponent(%v) = %s; want %s", tc.x, got, tc.want)
		}
		if f, err := strconv.ParseFloat(got, 32); err != nil || math.Abs(f-float64(tc.x)) > 5e-11 {
			t.Errorf("appendComponent(%v) = %s reads back as %v, %v", tc.x, got, f, err)
		}
	}
}

func TestEmbeddingsEndpoint(t *testing.T) {
	_, srv := serve(t, Options{APIKey: testKey, Deployments: map[string]Deployment{
		"emb":   {Model: "text-embedding-3-large", EmbeddingDimensions: 3072},
		"small": {Model: "text-embedding-3-small"},
	}})
	type reply struct {
		Data []struct {
			Embedding json.RawMessage
			Index     int
			Object    string
		}
		Model, Object string
		Usage         struct {
			PromptTokens int `json:"prompt_tokens"`
			TotalTokens  int `json:"total_tokens"`
		} `json:"usage"`
	}
	get := func(t *testing.T, path, body string) reply {
		t.Helper()
		resp, b := post(t, srv, path, body)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d\n%s", resp.StatusCode, b)
		}
		var r reply
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	floats := func(t *testing.T, raw json.RawMessage) []float32 {
		var v []float32
		if err := json.Unmarshal(raw, &v); err != nil {
			var s string
			json.Unmarshal(raw, &s)
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				t.Fatalf("embedding is neither floats nor base64: %s", raw)
			}
			for i := 0; i+4 <= len(b); i += 4 {
				v = append(v, math.Float32frombits(binary.LittleEndian.Uint32(b[i:])))
			}
		}
		return v
	}

	t.Run("default dimensions and usage", func(t *testing.T) {
		r := get(t, "/openai/deployments/emb/embeddings?api-version=2024-10-21", `{"input":["hello world","good morning"]}`)
		want := tokens.Count("text-embedding-3-large", "hello world") + tokens.Count("text-embedding-3-large", "good morning")
		if len(r.Data) != 2 || r.Object != "list" || r.Model != "text-embedding-3-large" || r.Usage.PromptTokens != want || r.Usage.TotalTokens != want {
			t.Fatalf("got %d embeddings, object %q, model %q, usage %+v; want 2 embeddings and %d tokens",
				len(r.Data), r.Object, r.Model, r.Usage, want)
		}
		for i, d := range r.Data {
			v := floats(t, d.Embedding)
			if len(v) != 3072 || d.Index != i || d.Object != "embedding" || math.Abs(cosine(v, v)-1) > 1e-6 {
				t.Errorf("embedding %d: %d dims, index %d, object %q", i, len(v), d.Index, d.Object)
			}
			var norm float64
			for _, x := range v {
				norm += float64(x) * float64(x)
			}
			if math.Abs(norm-1) > 1e-4 {
				t.Errorf("embedding %d has norm² %v; want 1", i, norm)
			}
		}
	})
	t.Run("dimensions and base64", func(t *testing.T) {
		f := get(t, "/v1/embeddings", `{"model":"small","input":"hello world","dimensions":64}`)
		b := get(t, "/v1/embeddings", `{"model":"small","input":"hello world","dimensions":64,"encoding_format":"base64"}`)
		vf, vb := floats(t, f.Data[0].Embedding), floats(t, b.Data[0].Embedding)
		if len(vf) != 64 || len(vb) != 64 {
			t.Fatalf("got %d floats and %d from base64; want 64", len(vf), len(vb))
		}
		for i := range vf {
			if math.Abs(float64(vf[i]-vb[i])) > 1e-9 {
				t.Errorf("component %d: float %v, base64 %v", i, vf[i], vb[i])
			}
		}
		if b.Data[0].Embedding[0] != '"' {
			t.Errorf("base64 embedding is not a string: %s", b.Data[0].Embedding)
		}
	})
	t.Run("token arrays count their tokens", func(t *testing.T) {
		r := get(t, "/v1/embeddings", `{"model":"small","input":[[1,2,3],[4]]}`)
		if len(r.Data) != 2 || r.Usage.PromptTokens != 4 {
			t.Errorf("got %d embeddings and %d tokens; want 2 and 4", len(r.Data), r.Usage.PromptTokens)
		}
	})
	for _, bad := range []string{
		`{"model":"small","input":"x","dimensions":2000}`,
		`{"model":"small","input":"x","dimensions":0}`,
		`{"model":"small","input":"x","encoding_format":"hex"}`,
		`{"model":"small","input":[]}`,
		`{"model":"small","input":{"a":1}}`,
		`{"model":"small","input":[1,"a"]}`,
		`{"model":"small"}`,
	} {
		if resp, b := post(t, srv, "/v1/embeddings", bad); resp.StatusCode != 400 {
			t.Errorf("%s: status %d; want 400\n%s", bad, resp.StatusCode, b)
		}
	}
}

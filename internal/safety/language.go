package safety

import (
	"context"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/sluice-gateway/sluice/internal/pii"
)

// Limits of the Language API's synchronous analyze-text call.
const (
	maxDocText  = 5120 // characters per document
	maxDocs     = 5    // documents per request
	languageAPI = "2023-04-01"
)

// Language recognises PII with the Azure AI Language API
// (/language/:analyze-text, kind PiiEntityRecognition) of the client's
// endpoint. It implements pii.Service and is safe for concurrent use.
type Language struct{ C *Client }

type piiDoc struct {
	ID       string `json:"id"`
	Language string `json:"language"`
	Text     string `json:"text"`
}

type piiRequest struct {
	Kind       string `json:"kind"`
	Parameters struct {
		ModelVersion    string   `json:"modelVersion"`
		PiiCategories   []string `json:"piiCategories,omitempty"`
		StringIndexType string   `json:"stringIndexType"`
	} `json:"parameters"`
	AnalysisInput struct {
		Documents []piiDoc `json:"documents"`
	} `json:"analysisInput"`
}

type piiResponse struct {
	Results struct {
		Documents []struct {
			ID       string `json:"id"`
			Entities []struct {
				Category string  `json:"category"`
				Offset   int     `json:"offset"`
				Length   int     `json:"length"`
				Score    float64 `json:"confidenceScore"`
			} `json:"entities"`
		} `json:"documents"`
	} `json:"results"`
}

// piece is a part of one text sent as one document.
type piece struct {
	text  int // index of the text
	start int // byte offset of the piece in the text
	s     string
}

// Recognise implements pii.Service: each text is cut into documents of at
// most 5,120 characters, sent five to a request, and the entities' offsets
// (asked in code points) are turned into byte offsets of the texts.
func (l Language) Recognise(ctx context.Context, texts []string, categories []string) ([][]pii.Entity, error) {
	var pieces []piece
	for i, t := range texts {
		off := 0
		for _, s := range Split(t, maxDocText) {
			if s != "" {
				pieces = append(pieces, piece{text: i, start: off, s: s})
			}
			off += len(s)
		}
	}
	out := make([][]pii.Entity, len(texts))
	for b := 0; b < len(pieces); b += maxDocs {
		batch := pieces[b:min(b+maxDocs, len(pieces))]
		var req piiRequest
		req.Kind = "PiiEntityRecognition"
		req.Parameters.ModelVersion = "latest"
		req.Parameters.PiiCategories = categories
		req.Parameters.StringIndexType = "UnicodeCodePoint"
		for j, p := range batch {
			req.AnalysisInput.Documents = append(req.AnalysisInput.Documents, piiDoc{ID: strconv.Itoa(j), Language: "en", Text: p.s})
		}
		var resp piiResponse
		if err := l.C.post(ctx, "/language/:analyze-text", "api-version="+languageAPI, req, &resp); err != nil {
			return nil, err
		}
		for _, d := range resp.Results.Documents {
			j, err := strconv.Atoi(d.ID)
			if err != nil || j < 0 || j >= len(batch) {
				continue
			}
			p := batch[j]
			for _, e := range d.Entities {
				if len(categories) > 0 && !slices.Contains(categories, e.Category) {
					continue
				}
				s, ok1 := byteOffset(p.s, e.Offset)
				end, ok2 := byteOffset(p.s, e.Offset+e.Length)
				if !ok1 || !ok2 || end <= s {
					continue
				}
				out[p.text] = append(out[p.text], pii.Entity{Category: e.Category, Start: p.start + s, End: p.start + end})
			}
		}
	}
	return out, nil
}

// byteOffset turns an offset in code points into one in bytes.
func byteOffset(s string, runes int) (int, bool) {
	if runes < 0 {
		return 0, false
	}
	i := 0
	for n := 0; n < runes; n++ {
		if i >= len(s) {
			return 0, false
		}
		_, sz := utf8.DecodeRuneInString(s[i:])
		i += sz
	}
	return i, true
}

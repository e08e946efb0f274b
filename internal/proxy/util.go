package proxy

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"

	"github.com/sluice-gateway/sluice/internal/auth"
)

var keyFromRequest = auth.KeyFromRequest

// requestID returns the client's x-request-id when it is a sane token
// (1 to 128 visible ASCII characters), else a new random UUID.
func requestID(client string) string {
	if n := len(client); n > 0 && n <= 128 {
		ok := true
		for i := 0; i < n; i++ {
			if c := client[i]; c <= ' ' || c > '~' {
				ok = false
				break
			}
		}
		if ok {
			return client
		}
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 9562 variant
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

type modelList struct {
	Object string       `json:"object"`
	Data   []modelEntry `json:"data"`
}

type modelEntry struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// listModels answers GET /v1/models with the models the caller's product may use.
func (x *exchange) listModels() {
	list := modelList{Object: "list", Data: []modelEntry{}}
	for _, m := range x.subscription.Product.Models {
		list.Data = append(list.Data, modelEntry{ID: m, Object: "model", OwnedBy: "sluice"})
	}
	body, _ := json.Marshal(list)
	x.w.Header().Set("Content-Type", "application/json")
	x.status, x.started = http.StatusOK, true
	x.w.WriteHeader(http.StatusOK)
	if x.r.Method != http.MethodHead {
		_, _ = x.w.Write(body)
	}
}

package proxy

import (
	"encoding/json"
	"net/http"
)

// clientRequestID returns the client's x-request-id when it is a sane token
// (1 to 128 visible ASCII characters), else "".
func clientRequestID(client string) string {
	n := len(client)
	if n == 0 || n > 128 {
		return ""
	}
	for i := 0; i < n; i++ {
		if c := client[i]; c <= ' ' || c > '~' {
			return ""
		}
	}
	return client
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

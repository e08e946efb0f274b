package proxy

import (
	"encoding/json"
	"net/http"
)

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
func (x *exchange) listModels() error {
	list := modelList{Object: "list", Data: []modelEntry{}}
	for _, m := range x.req.Subscription.Product.Models {
		list.Data = append(list.Data, modelEntry{ID: m, Object: "model", OwnedBy: "sluice"})
	}
	body, err := json.Marshal(list)
	if err != nil {
		return err
	}
	x.w.Header().Set("Content-Type", "application/json")
	x.writeHead(http.StatusOK)
	if x.r.Method != http.MethodHead {
		_, _ = x.w.Write(body)
	}
	return nil
}

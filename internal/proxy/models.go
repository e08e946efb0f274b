package proxy

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"

	"github.com/sluice-gateway/sluice/internal/wire"
)

type modelList struct {
	Object string       `json:"object"`
	Data   []modelEntry `json:"data"`
}

// modelEntry is a model as OpenAI lists it; on Azure's own surface
// (/openai/models) it carries Azure's fields too.
type modelEntry struct {
	ID        string `json:"id"`
	Object    string `json:"object"`
	Created   int64  `json:"created"`
	OwnedBy   string `json:"owned_by"`
	CreatedAt *int64 `json:"created_at,omitempty"`
	Status    string `json:"status,omitempty"`
	Lifecycle string `json:"lifecycle_status,omitempty"`
}

func newModelEntry(id string, azure bool) modelEntry {
	e := modelEntry{ID: id, Object: "model", OwnedBy: "sluice"}
	if azure {
		zero := int64(0)
		e.CreatedAt, e.Status, e.Lifecycle = &zero, "succeeded", "generally-available"
	}
	return e
}

// listModels answers the model list (GET /v1/models, /openai/v1/models,
// /openai/models) with the models the caller's product may use.
func (x *exchange) listModels(azure bool) error {
	list := modelList{Object: "list", Data: []modelEntry{}}
	for _, m := range x.req.Subscription.Product.Models {
		list.Data = append(list.Data, newModelEntry(m, azure))
	}
	return x.writeJSON(list)
}

// getModel answers a model's retrieval (GET /v1/models/{id} and the like):
// the model when the caller's product may use it, else 404, as the service
// answers for a model that does not exist or is not the caller's.
func (x *exchange) getModel(id string, azure bool) error {
	if _, ok := slices.BinarySearch(x.req.Subscription.Product.Models, id); !ok {
		return wire.NewError(http.StatusNotFound, wire.TypeInvalidRequest, "model_not_found",
			"The model "+strconv.Quote(wire.EchoText(id))+" does not exist or you do not have access to it.")
	}
	return x.writeJSON(newModelEntry(id, azure))
}

// writeJSON answers 200 with v as JSON (the body left out for HEAD).
func (x *exchange) writeJSON(v any) error {
	body, err := json.Marshal(v)
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

package proxy

import (
	"strings"

	"github.com/sluice-gateway/sluice/internal/wire"
)

// pathKind is what a path asks for.
type pathKind uint8

const (
	pathUnknown   pathKind = iota
	pathOperation          // an API operation (POST)
	pathModels             // the model list (GET)
	pathModel              // one model (GET)
	pathResponse           // a stored response: retrieve, delete, input items, cancel
)

// target is what a client-facing path names.
type target struct {
	kind pathKind
	op   wire.Operation
	// deployment is the Azure deployment in the path, when there is one.
	deployment string
	// id is the model of pathModel, or the response id of pathResponse.
	id string
	// action is pathResponse's: "" (retrieve or delete), "input_items" or
	// "cancel".
	action string
	// azure is set for Azure's own surface (/openai/models, /openai/responses
	// with ?api-version=), whose answers carry Azure's fields.
	azure bool
}

// parsePath recognises the client-facing paths:
//
//	/openai/deployments/{deployment}/chat/completions | completions | embeddings
//	/openai/v1/chat/completions | completions | embeddings | responses | models | models/{id}
//	/v1/chat/completions | completions | embeddings | responses | models | models/{id}
//	/openai/responses | models | models/{id}     (the Azure surface with ?api-version)
//	.../responses/{id} | responses/{id}/input_items | responses/{id}/cancel
func parsePath(p string) target {
	azure := false
	switch {
	case strings.HasPrefix(p, "/openai/deployments/"):
		rest := p[len("/openai/deployments/"):]
		i := strings.IndexByte(rest, '/')
		if i <= 0 {
			return target{}
		}
		op := wire.OperationFromPath(rest[i:])
		if op == wire.OpUnknown || op == wire.OpResponses || op == wire.OpMessages {
			return target{}
		}
		return target{kind: pathOperation, op: op, deployment: rest[:i]}
	case p == "/anthropic/v1/messages":
		// The Anthropic SDKs' base URL is the gateway's /anthropic.
		return target{kind: pathOperation, op: wire.OpMessages}
	case strings.HasPrefix(p, "/openai/v1/"):
		p = p[len("/openai/v1"):]
	case strings.HasPrefix(p, "/v1/"):
		p = p[len("/v1"):]
	case strings.HasPrefix(p, "/openai/responses"), strings.HasPrefix(p, "/openai/models"):
		// Azure's own surface for what is not per deployment.
		p, azure = p[len("/openai"):], true
	default:
		return target{}
	}
	if p == "/models" {
		return target{kind: pathModels, azure: azure}
	}
	if id, ok := strings.CutPrefix(p, "/models/"); ok && id != "" {
		return target{kind: pathModel, id: id, azure: azure}
	}
	if rest, ok := strings.CutPrefix(p, "/responses/"); ok {
		id, action, _ := strings.Cut(rest, "/")
		if id == "" || (action != "" && action != "input_items" && action != "cancel") {
			return target{}
		}
		return target{kind: pathResponse, op: wire.OpResponses, id: id, action: action, azure: azure}
	}
	if op := wire.OperationFromPath(p); op != wire.OpUnknown && (!azure || op == wire.OpResponses) && (op != wire.OpMessages || p == "/messages") {
		return target{kind: pathOperation, op: op, azure: azure}
	}
	return target{}
}

// stripPrefix removes the first of prefixes (server.path_prefixes) that p
// starts with, as a whole path segment.
func stripPrefix(p string, prefixes []string) string {
	for _, pre := range prefixes {
		if rest, ok := strings.CutPrefix(p, pre); ok && strings.HasPrefix(rest, "/") {
			return rest
		}
	}
	return p
}

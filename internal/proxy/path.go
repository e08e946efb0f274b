package proxy

import (
	"strings"

	"github.com/sluice-gateway/sluice/internal/wire"
)

// pathKind is what a path asks for.
type pathKind uint8

const (
	pathUnknown pathKind = iota
	pathOperation
	pathModels
)

// parsePath recognises the client-facing paths:
//
//	/openai/deployments/{deployment}/chat/completions | completions | embeddings
//	/openai/v1/chat/completions | completions | embeddings | responses | models
//	/v1/chat/completions | completions | embeddings | responses | models
func parsePath(p string) (kind pathKind, op wire.Operation, deployment string) {
	switch {
	case strings.HasPrefix(p, "/openai/deployments/"):
		rest := p[len("/openai/deployments/"):]
		i := strings.IndexByte(rest, '/')
		if i <= 0 {
			return pathUnknown, 0, ""
		}
		op = wire.OperationFromPath(rest[i:])
		if op == wire.OpUnknown || op == wire.OpResponses {
			return pathUnknown, 0, ""
		}
		return pathOperation, op, rest[:i]
	case strings.HasPrefix(p, "/openai/v1/"):
		p = p[len("/openai/v1"):]
	case strings.HasPrefix(p, "/v1/"):
		p = p[len("/v1"):]
	default:
		return pathUnknown, 0, ""
	}
	if p == "/models" {
		return pathModels, 0, ""
	}
	if op = wire.OperationFromPath(p); op != wire.OpUnknown {
		return pathOperation, op, ""
	}
	return pathUnknown, 0, ""
}

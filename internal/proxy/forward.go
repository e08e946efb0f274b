package proxy

import (
	"net/http"
	"strconv"

	"github.com/sluice-gateway/sluice/internal/backend"
	"github.com/sluice-gateway/sluice/internal/tokens"
	"github.com/sluice-gateway/sluice/internal/wire"
)

// forward serves an API operation: body, model and entitlement, stages,
// admission, then the backends.
func (x *exchange) forward(op wire.Operation, deployment string) error {
	x.req.Op = op
	body, err := x.readBody()
	if err != nil {
		return err
	}
	req, err := wire.ParseRequest(body)
	if err != nil {
		return wire.NewError(http.StatusBadRequest, wire.TypeInvalidRequest, "invalid_request_body", err.Error())
	}
	x.stream = req.Stream
	model := deployment
	if model == "" {
		model = req.Model
	}
	if model == "" {
		return wire.NewError(http.StatusBadRequest, wire.TypeInvalidRequest, "missing_model",
			"The request names no model: set \"model\" in the body, or use /openai/deployments/{deployment}/...")
	}
	m, ok := x.table.Model(model)
	// What the ledger, the log and the trace keep of a name the client
	// chose: a configured name as it is, anything else cleaned and cut.
	x.model = wire.CleanText(model, wire.MaxModelBytes)
	if x.h.tracer != nil {
		x.ctx, x.span = x.h.tracer.StartRequest(x.r.Context(), x.r, op.String(), x.model)
	}
	if !ok {
		return wire.NewError(http.StatusNotFound, wire.TypeInvalidRequest, "model_not_found",
			"The model or deployment "+strconv.Quote(wire.EchoText(model))+" does not exist.")
	}
	x.modelKnown = true
	sub := x.req.Subscription
	if !sub.Product.Allows(model) {
		return wire.NewError(http.StatusForbidden, wire.TypePermission, "model_not_allowed",
			"Your subscription may not use the model "+strconv.Quote(model)+".")
	}
	x.req.Model, x.req.Header, x.req.Body, x.req.Parsed = model, x.r.Header, body, req
	x.req.head = &x.head
	x.meter.enc = tokens.EncodingFor(model)
	if x.table.Redactor != nil {
		x.meter.keep = x.table.Config.Logging.PromptMaxBytes
	}

	if len(x.h.stages) > 0 {
		a, err := x.runStages()
		if err != nil {
			return err
		}
		if a != nil {
			return x.writeAnswer(a)
		}
	}
	x.injectIncludeUsage()
	if err := x.admit(); err != nil {
		return err
	}
	if op == wire.OpResponses {
		x.pinToOwner(m.Pool)
		x.req.AddTap(&ownerTap{x: x})
	}
	call := backend.Call{
		Op:         op,
		Model:      model,
		APIVersion: wire.QueryValue(x.r.URL.RawQuery, "api-version"),
		Request:    x.req.Parsed,
		Body:       x.req.Body,
		Header:     x.r.Header,
		RequestID:  x.id,
	}
	call.ForwardedFor, call.TrustedPeer = x.forwardedFor()
	return x.run(m.Pool, &call)
}

// injectIncludeUsage asks the backend of a chat or completions stream for
// its usage chunk when the client did not, and has the meter take it out of
// what the client sees: Sluice needs exact usage, the client gets exactly
// the stream it asked for.
func (x *exchange) injectIncludeUsage() {
	req := x.req.Parsed
	if !req.Stream || req.IncludeUsage || (x.req.Op != wire.OpChatCompletions && x.req.Op != wire.OpCompletions) {
		return
	}
	if withUsage := req.WithIncludeUsage(x.req.Body); len(withUsage) != len(x.req.Body) {
		if r2, err := wire.ParseRequest(withUsage); err == nil {
			x.req.Body, x.req.Parsed = withUsage, r2
			x.meter.injected = true
		}
	}
}

package backend

import (
	"bytes"
	"io"
	"net/http"

	"github.com/sluice-gateway/sluice/internal/wire"
)

// notForwarded are client headers that never reach a backend: the client's
// credentials (Sluice sends the backend's own), and headers the outbound
// request sets itself.
var notForwarded = map[string]bool{
	"Authorization":             true,
	"Api-Key":                   true,
	"Ocp-Apim-Subscription-Key": true,
	"Cookie":                    true,
	"Host":                      true,
	"Content-Length":            true,
	"Accept-Encoding":           true, // see DisableCompression in NewState
	"X-Request-Id":              true,
	"X-Sluice-Affinity":         true,
}

func outboundHeader(client http.Header) http.Header {
	h := make(http.Header, len(client)+2)
	wire.CopyHeader(h, client, func(k string) bool { return notForwarded[k] })
	return h
}

// setBody attaches body so that the transport can send it again (GetBody)
// and knows its length.
func setBody(req *http.Request, body []byte) {
	req.ContentLength = int64(len(body))
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.GetBody = func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(body)), nil
	}
	if len(body) == 0 {
		req.Body = http.NoBody
	}
}

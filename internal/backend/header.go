package backend

import (
	"bytes"
	"io"
	"net/http"
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

// setBody attaches body, to be read through rd, so that the transport can
// send it again (GetBody) and knows its length. The body stays a
// NopCloser around a *bytes.Reader: the transport recognises that as
// in memory and sends the headers and a small body in one packet.
func setBody(req *http.Request, rd *bytes.Reader, body []byte) {
	req.ContentLength = int64(len(body))
	rd.Reset(body)
	req.Body = io.NopCloser(rd)
	req.GetBody = func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(body)), nil
	}
	if len(body) == 0 {
		req.Body = http.NoBody
	}
}

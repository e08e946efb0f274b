package backend

import (
	"bytes"
	"io"
	"net/http"
)

// notForwarded are client headers that never reach a backend: the client's
// credentials, and anything shaped like one (Sluice sends the backend's own
// and no client key may reach a backend), and headers the outbound request
// sets itself.
var notForwarded = map[string]bool{
	"Authorization":             true,
	"Api-Key":                   true,
	"X-Api-Key":                 true,
	"X-Goog-Api-Key":            true,
	"Ocp-Apim-Subscription-Key": true,
	"Cookie":                    true,
	"Host":                      true,
	"Content-Length":            true,
	"Content-Encoding":          true, // Sluice accepts only identity bodies
	"Accept-Encoding":           true, // see DisableCompression in NewState
	"X-Request-Id":              true,
	"X-Sluice-Affinity":         true,
	"X-Forwarded-For":           true, // set from Call.ForwardedFor
}

// forwarding are the client headers that say where a request came from. They
// reach a backend only from a trusted proxy (Call.TrustedPeer): from anyone
// else they would be the client's word about its own address.
var forwarding = map[string]bool{
	"Forwarded":         true,
	"X-Forwarded-Host":  true,
	"X-Forwarded-Proto": true,
	"X-Forwarded-Port":  true,
	"X-Real-Ip":         true,
	"X-Client-Ip":       true,
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

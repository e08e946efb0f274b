package proxy

// clientRequestID returns the client's x-request-id when it is a sane token
// (1 to 128 visible ASCII characters), else "": a client's id reaches the
// backend and the logs, so it may carry nothing that breaks a header or a
// log line.
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

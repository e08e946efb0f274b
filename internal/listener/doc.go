// Package listener guards the gateway's TCP listeners below net/http: it caps
// the connections open at once, in total and per peer address, answering 503
// beyond the caps before any request is read, so that strangers cannot run the
// process out of file descriptors; it refuses requests whose framing is
// ambiguous (request smuggling) before net/http parses them; and it turns the
// plain-text errors net/http writes itself into OpenAI-shaped JSON.
//
// It sits beside the mechanisms: it imports only wire, and app wires it in.
package listener

package config

// UI turns on the web pages Sluice serves from its own binary (package
// webui). Both are off unless set; the demo turns both on.
type UI struct {
	// Chat serves the chat app at /chat/ on server.listen: a page that signs
	// in with a subscription key (kept in the browser's session storage),
	// calls the gateway's own chat completions API, and shows which backend
	// and region answered. The page holds no secret of its own. Default false.
	Chat bool `yaml:"chat" json:"chat"`
	// Dashboard serves the operations dashboard at /ui/ on admin.listen:
	// live backends and traffic, usage, subscriptions, config and reload,
	// behind a sign-in with the admin key (or a token with one of
	// admin.jwt_roles). Needs admin.listen and admin.api_key or
	// admin.jwt_roles to be of use. Default false.
	Dashboard bool `yaml:"dashboard" json:"dashboard"`
}

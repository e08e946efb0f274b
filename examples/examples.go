// Package examples holds the reference configuration, sluice.yaml, embedded
// so that the demo runs the very file users read and tests check it.
package examples

import _ "embed"

// Reference is the reference configuration, examples/sluice.yaml.
//
//go:embed sluice.yaml
var Reference []byte

// Package layers holds the test that keeps Sluice's dependencies pointing
// one way: the order of the packages is written down once, in the table of
// docs/architecture.md, and no package may import one that the table lists
// after it.
package layers

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const (
	module   = "github.com/sluice-gateway/sluice/"
	docPath  = "../../docs/architecture.md"
	internal = ".."
)

// rowPackage reads the package of a row of the architecture table:
// "| layer | `name` | job |".
var rowPackage = regexp.MustCompile("^\\|[^|]*\\| `([a-z0-9]+)` \\|")

// order returns the packages of the architecture table, bottom first.
func order(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	var pkgs []string
	for _, line := range strings.Split(string(raw), "\n") {
		if m := rowPackage.FindStringSubmatch(line); m != nil {
			pkgs = append(pkgs, m[1])
		}
	}
	return pkgs
}

// imports returns the Sluice packages a package's non-test files import, by
// their name under internal/.
func imports(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range file.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if name, ok := strings.CutPrefix(p, module+"internal/"); ok && !slices.Contains(out, name) {
				out = append(out, name)
			}
		}
	}
	return out
}

// TestDependenciesPointDown fails when a package imports one the
// architecture table lists after it (or is missing from the table),
// so that mechanisms never import the pipeline and nothing imports app.
func TestDependenciesPointDown(t *testing.T) {
	pkgs := order(t)
	rank := make(map[string]int, len(pkgs))
	for i, p := range pkgs {
		rank[p] = i
	}
	dirs, err := os.ReadDir(internal)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, d := range dirs {
		name := d.Name()
		if !d.IsDir() || name == "layers" {
			continue
		}
		deps := imports(t, filepath.Join(internal, name))
		r, ok := rank[name]
		if !ok {
			t.Errorf("internal/%s is not in the package table of docs/architecture.md; add it where it belongs", name)
			continue
		}
		checked++
		for _, dep := range deps {
			if dr, ok := rank[dep]; ok && dr >= r {
				t.Errorf("internal/%s imports internal/%s, which the architecture table lists after it, in a layer above: dependencies must point down", name, dep)
			}
		}
	}
	if checked < 20 {
		t.Errorf("checked %d packages; the table or the tree was not read right", checked)
	}
}

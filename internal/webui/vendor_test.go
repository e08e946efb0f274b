package webui

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"strings"
	"testing"
)

// manifestEntry is a vendored file in static/vendor/MANIFEST.json.
type manifestEntry struct {
	File          string `json:"file"`
	Package       string `json:"package"`
	Version       string `json:"version"`
	Source        string `json:"source"`
	TarballSHA256 string `json:"tarball_sha256"`
	License       string `json:"license"`
	LicenseFile   string `json:"license_file"`
	SHA256        string `json:"sha256"`
}

// TestVendorManifest checks that every vendored file is listed with its
// version, licence and SHA-256, that the hashes match, and that nothing
// unlisted hides in the vendor folder.
func TestVendorManifest(t *testing.T) {
	raw, err := staticFS.ReadFile("static/vendor/MANIFEST.json")
	if err != nil {
		t.Fatal(err)
	}
	var entries []manifestEntry
	if err := json.Unmarshal(raw, &entries); err != nil {
		t.Fatalf("MANIFEST.json: %v", err)
	}
	listed := map[string]bool{"MANIFEST.json": true}
	for _, e := range entries {
		if e.File == "" || e.Package == "" || e.Version == "" || e.License == "" || e.LicenseFile == "" || e.Source == "" {
			t.Errorf("%+v: want file, package, version, source, license and license_file", e)
		}
		if len(e.TarballSHA256) != 64 {
			t.Errorf("%s: tarball_sha256 %q is not a SHA-256", e.File, e.TarballSHA256)
		}
		body, err := staticFS.ReadFile("static/vendor/" + e.File)
		if err != nil {
			t.Errorf("%s: %v", e.File, err)
			continue
		}
		sum := sha256.Sum256(body)
		if got := hex.EncodeToString(sum[:]); got != e.SHA256 {
			t.Errorf("%s: sha256 %s; the manifest says %s", e.File, got, e.SHA256)
		}
		if _, err := staticFS.ReadFile("static/vendor/" + e.LicenseFile); err != nil {
			t.Errorf("%s: licence file: %v", e.File, err)
		}
		listed[e.File] = true
	}
	files, err := fs.ReadDir(staticFS, "static/vendor")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !listed[f.Name()] {
			t.Errorf("static/vendor/%s is not in MANIFEST.json", f.Name())
		}
	}
}

// TestNoRemoteResources checks that the pages load nothing from another
// origin: the UI works offline and a CDN cannot change it.
func TestNoRemoteResources(t *testing.T) {
	err := fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(p, "static/vendor/") {
			return err
		}
		body, _ := staticFS.ReadFile(p)
		for _, bad := range []string{"http://", "https://cdn", "//unpkg", "//cdn", "innerHTML", "dangerouslySetInnerHTML"} {
			if strings.Contains(string(body), bad) {
				t.Errorf("%s contains %q", p, bad)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

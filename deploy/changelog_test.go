package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestChangelogPins: CHANGELOG.md lists versions newest first, under "## X.Y.Z" headings after an
// optional "## Unreleased", and every reference to the image in the shipped manifests, the README and
// the demo (which prints how to run the image) pins the newest version it names (issue 14, item 19).
func TestChangelogPins(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "CHANGELOG.md"))
	if err != nil {
		t.Fatal(err)
	}
	newest, err := newestRelease(string(data))
	if err != nil {
		t.Fatal(err)
	}
	files, err := Manifests(".")
	if err != nil {
		t.Fatal(err)
	}
	pin := regexp.MustCompile(`densify/azure-rest-api-token:([0-9A-Za-z.+-]+)`)
	n := 0
	for _, f := range append(files, filepath.Join("..", "README.md"), filepath.Join("..", "demo", "main.go")) {
		text, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range pin.FindAllStringSubmatch(string(text), -1) {
			n++
			if m[1] != newest && m[1] != "latest" && m[1] != "X.Y.Z" {
				t.Errorf("%s pins %s, but the newest release in CHANGELOG.md is %s", f, m[0], newest)
			}
		}
	}
	if n == 0 {
		t.Fatal("no image references found")
	}
	t.Logf("%d image references pin %s, the newest release in CHANGELOG.md", n, newest)
}

// newestRelease returns the first "## X.Y.Z" heading of changelog, after checking that the headings
// are "## Unreleased" (first, if any), then versions in descending order, then anything else.
func newestRelease(changelog string) (string, error) {
	var versions [][3]int
	var names []string
	for i, line := range strings.Split(changelog, "\n") {
		h, ok := strings.CutPrefix(line, "## ")
		if !ok {
			continue
		}
		if h == "Unreleased" {
			if len(versions) > 0 {
				return "", fmt.Errorf("CHANGELOG.md:%d: Unreleased below a version", i+1)
			}
			continue
		}
		m := regexp.MustCompile(`^([0-9]+)\.([0-9]+)\.([0-9]+)$`).FindStringSubmatch(h)
		if m == nil {
			continue
		}
		var v [3]int
		for j := range v {
			v[j], _ = strconv.Atoi(m[j+1])
		}
		if len(versions) > 0 && !less(v, versions[len(versions)-1]) {
			return "", fmt.Errorf("CHANGELOG.md:%d: %s is not older than %s above it: newest first", i+1, h, names[len(names)-1])
		}
		versions, names = append(versions, v), append(names, h)
	}
	if len(names) == 0 {
		return "", fmt.Errorf("CHANGELOG.md names no version (## X.Y.Z)")
	}
	return names[0], nil
}

func less(a, b [3]int) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

// TestNewestRelease proves the order check and the pick can fail.
func TestNewestRelease(t *testing.T) {
	for _, tc := range []struct{ text, want, wantErr string }{
		{"## Unreleased\n## 1.2.0\n## 1.1.0\n## Before 1.1.0\n", "1.2.0", ""},
		{"## 1.1.0\n## 1.2.0\n", "", "1.2.0 is not older than 1.1.0"},
		{"## 1.1.0\n## Unreleased\n", "", "Unreleased below a version"},
		{"## Unreleased\n", "", "names no version"},
	} {
		got, err := newestRelease(tc.text)
		if got != tc.want || (err == nil) != (tc.wantErr == "") || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("newestRelease(%q) = %q, %v; want %q, %q", tc.text, got, err, tc.want, tc.wantErr)
		}
	}
}

package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// workflow is the part of a GitHub Actions workflow these checks read.
type workflow struct {
	On   map[string]any `json:"on"`
	Jobs map[string]job `json:"jobs"`
}

type job struct {
	Needs any    `json:"needs"` // a string or a list
	Uses  string `json:"uses"`  // a reusable workflow
	Steps []step `json:"steps"`
}

type step struct {
	Name string            `json:"name"`
	Uses string            `json:"uses"`
	Run  string            `json:"run"`
	With map[string]string `json:"with"`
}

func readWorkflow(t *testing.T, name string) workflow {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", ".github", "workflows", name))
	if err != nil {
		t.Fatal(err)
	}
	// YAML 1.1 reads the key "on" as true: name it before decoding.
	data = regexp.MustCompile(`(?m)^on:`).ReplaceAll(data, []byte(`"on":`))
	var w workflow
	if err := yaml.Unmarshal(data, &w); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return w
}

// needs returns every job that job name of w needs, directly or through another.
func (w workflow) needs(name string) []string {
	var out []string
	var visit func(string)
	visit = func(n string) {
		var direct []string
		switch v := w.Jobs[n].Needs.(type) {
		case string:
			direct = []string{v}
		case []any:
			for _, x := range v {
				direct = append(direct, x.(string))
			}
		}
		for _, d := range direct {
			if !slices.Contains(out, d) {
				out = append(out, d)
				visit(d)
			}
		}
	}
	visit(name)
	return out
}

// TestWorkflows checks the order the release depends on (issue 14, items 3 and 4): CI runs .ci/run on
// every push and pull request; the release runs it first, and nothing is built for release before it
// passes; GoReleaser pushes the image under a staging tag only, and the one step that adds X.Y.Z and
// latest (.ci/release/promote) runs in a job that needs the scan and after the signing; every action
// is pinned by commit.
func TestWorkflows(t *testing.T) {
	pinned := regexp.MustCompile(`^[^@]+@[0-9a-f]{40}$`)
	files, err := filepath.Glob(filepath.Join("..", ".github", "workflows", "*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no workflows: %v", err)
	}
	for _, f := range files {
		w := readWorkflow(t, filepath.Base(f))
		for name, j := range w.Jobs {
			for _, s := range append([]step{{Uses: j.Uses}}, j.Steps...) {
				if s.Uses != "" && !strings.HasPrefix(s.Uses, "./") && !pinned.MatchString(s.Uses) {
					t.Errorf("%s: job %s: %q is not pinned by commit", filepath.Base(f), name, s.Uses)
				}
			}
		}
	}

	ci := readWorkflow(t, "ci.yml")
	for _, event := range []string{"push", "pull_request", "workflow_call"} {
		if _, ok := ci.On[event]; !ok {
			t.Errorf("ci.yml: does not run on %s", event)
		}
	}
	runsCI := false
	for _, j := range ci.Jobs {
		for _, s := range j.Steps {
			runsCI = runsCI || strings.Contains(s.Run, "bash .ci/run")
		}
	}
	if !runsCI {
		t.Error("ci.yml: no step runs bash .ci/run")
	}

	rel := readWorkflow(t, "release.yml")
	test := ""
	for name, j := range rel.Jobs {
		if j.Uses == "./.github/workflows/ci.yml" {
			test = name
		}
	}
	if test == "" {
		t.Fatal("release.yml: no job calls ci.yml")
	}
	promoter, scan := "", ""
	for name, j := range rel.Jobs {
		signed := false
		for _, s := range j.Steps {
			switch {
			case strings.Contains(s.Uses, "trivy-action"):
				scan = name
				if s.With["exit-code"] != "1" {
					t.Errorf("release.yml: job %s: the scan does not fail the job (exit-code %q)", name, s.With["exit-code"])
				}
			case strings.Contains(s.Run, ".ci/release/sign-image"):
				signed = true
			case strings.Contains(s.Run, ".ci/release/promote"):
				promoter = name
				if !signed {
					t.Errorf("release.yml: job %s tags the image before signing it", name)
				}
			case strings.Contains(s.Run, "crane tag") || strings.Contains(s.Run, "crane copy"):
				t.Errorf("release.yml: job %s: step %q tags or copies the image outside .ci/release/promote", name, s.Name)
			}
			if strings.Contains(s.Run, "goreleaser release") && !slices.Contains(rel.needs(name), test) {
				t.Errorf("release.yml: job %s runs GoReleaser without needing the tests (%s)", name, test)
			}
		}
		if name != test && !slices.Contains(rel.needs(name), test) {
			t.Errorf("release.yml: job %s does not need the tests (%s)", name, test)
		}
	}
	if scan == "" || promoter == "" {
		t.Fatalf("release.yml: scan job %q, promote job %q: want both", scan, promoter)
	}
	if !slices.Contains(rel.needs(promoter), scan) {
		t.Errorf("release.yml: job %s adds X.Y.Z and latest without needing the scan (%s)", promoter, scan)
	}

	// GoReleaser pushes the staging tag only.
	data, err := os.ReadFile(filepath.Join("..", ".goreleaser.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var gr struct {
		Kos []struct {
			Tags []string `json:"tags"`
		} `json:"kos"`
	}
	if err := yaml.Unmarshal(data, &gr); err != nil {
		t.Fatal(err)
	}
	if len(gr.Kos) != 1 || !slices.Equal(gr.Kos[0].Tags, []string{"{{ .Version }}-candidate"}) {
		t.Errorf(".goreleaser.yaml: kos tags %+v, want only the staging tag {{ .Version }}-candidate", gr.Kos)
	}
}

package main

import (
	"strings"
	"testing"
)

// Every shipped manifest has an expectation: a new example cannot skip the cluster check.
func TestEveryManifestHasAnExpectation(t *testing.T) {
	files, err := shippedManifests("../..")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 5 {
		t.Fatalf("found only %q under deploy/: wrong directory?", files)
	}
	if err := missingExpectations(files); err != nil {
		t.Error(err)
	}
}

// The negative twin: a file without one is named.
func TestMissingExpectationIsNamed(t *testing.T) {
	err := missingExpectations([]string{"deploy/densify-cronjob.yaml", "deploy/new-example.yaml"})
	if err == nil || !strings.Contains(err.Error(), `"deploy/new-example.yaml"`) || strings.Contains(err.Error(), "densify-cronjob") {
		t.Errorf("got %v, want an error naming deploy/new-example.yaml only", err)
	}
}

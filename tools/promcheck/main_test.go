package main

import (
	"strings"
	"testing"
)

// TestParseRejects: the parsers that check a scrape refuse what a scraper would refuse, with the reason.
func TestParseRejects(t *testing.T) {
	good := "# HELP x_total A.\n# TYPE x_total counter\nx_total{a=\"b\"} 1\n"
	for _, tc := range []struct{ name, body, want string }{
		{"unclosed label set", "x_total{a=\"b\" 1\n", "textparse"},
		{"unescaped quote", "x_total{a=\"b\"c\"} 1\n", "textparse"},
		{"no value", "x_total{a=\"b\"}\n", "textparse"},
		{"duplicate family", good + "# TYPE x_total counter\n", "expfmt"},
		{"family missing", good, "no metric family azure_rest_api_token_build_info"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse([]byte(tc.body), "text/plain; version=0.0.4; charset=utf-8")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("parse: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// Command promcheck checks azure-rest-api-token's metrics with the Prometheus project's own code, in a
// module of its own so that none of it reaches the product's go.mod. It reads the scrapes of /metrics
// that the product's TestMetricsScrape took over HTTP while two tokens were kept fresh on a simulated
// clock (one of them failing its renewals), parses each with both parsers a scraper uses (the
// Prometheus server's model/textparse and prometheus/common's expfmt), and writes a rule unit test for
// `promtool test rules` whose input series are those scrapes, minute by minute, with the alerts of
// deploy/prometheusrule.yaml and what they must say at three moments.
//
// Usage, from this directory (.ci/metrics-check runs it):
//
//	go run . -scrapes DIR -rules ../../deploy/prometheusrule.yaml -out DIR
//
// DIR/scrapes.json (written by TestMetricsScrape) lists the scrapes; promcheck writes OUT/rules.yaml
// (the PrometheusRule's spec: a plain rules file) and OUT/test.yaml. The promtool that runs them is
// this module's tool: go tool promtool.
package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
	"sigs.k8s.io/yaml"
)

// scenario is DIR/scrapes.json.
type scenario struct {
	ContentType string   `json:"content_type"` // the Content-Type the endpoint served
	Failing     resource `json:"failing"`      // the token whose renewals fail
	Healthy     resource `json:"healthy"`      // the token whose renewals succeed
	Scrapes     []struct {
		Time int64  `json:"time"` // Unix seconds, on the simulated clock, which starts near 0
		File string `json:"file"`
	} `json:"scrapes"`
}

type resource struct {
	Resource string `json:"resource"`
	File     string `json:"file"`
}

// families are the metric families every scrape must hold.
var families = []string{
	"azure_rest_api_token_build_info",
	"azure_rest_api_token_token_expiry_timestamp_seconds",
	"azure_rest_api_token_token_issued_timestamp_seconds",
	"azure_rest_api_token_last_renewal_success_timestamp_seconds",
	"azure_rest_api_token_renewals_total",
	"azure_rest_api_token_token_requests_total",
	"azure_rest_api_token_token_request_retries_total",
	"azure_rest_api_token_token_requests_throttled_total",
}

// target are the labels a PodMonitor scrape adds to every series.
var target = map[string]string{"namespace": "demo", "pod": "azure-reader-0", "job": "demo/azure-rest-api-token", "instance": "10.0.0.7:9464"}

func main() {
	scrapes := flag.String("scrapes", "", "directory with scrapes.json and the scrapes")
	rules := flag.String("rules", "", "the PrometheusRule manifest")
	out := flag.String("out", "", "directory to write rules.yaml and test.yaml into")
	flag.Parse()
	if err := run(*scrapes, *rules, *out); err != nil {
		fmt.Fprintln(os.Stderr, "promcheck:", err)
		os.Exit(1)
	}
}

func run(scrapeDir, rulesFile, out string) error {
	data, err := os.ReadFile(filepath.Join(scrapeDir, "scrapes.json"))
	if err != nil {
		return err
	}
	var sc scenario
	if err := json.Unmarshal(data, &sc); err != nil {
		return fmt.Errorf("scrapes.json: %w", err)
	}
	if len(sc.Scrapes) < 2 {
		return errors.New("scrapes.json: fewer than 2 scrapes")
	}
	// series: selector -> value at each scrape ("" where absent).
	series := map[string][]string{}
	for i, s := range sc.Scrapes {
		body, err := os.ReadFile(filepath.Join(scrapeDir, s.File))
		if err != nil {
			return err
		}
		got, err := parse(body, sc.ContentType)
		if err != nil {
			return fmt.Errorf("%s: %w", s.File, err)
		}
		for sel, v := range got {
			if series[sel] == nil {
				series[sel] = make([]string, len(sc.Scrapes))
			}
			series[sel][i] = v
		}
	}
	fmt.Printf("%d scrapes parsed by textparse and expfmt alike, %d series, simulated times %ds to %ds\n",
		len(sc.Scrapes), len(series), sc.Scrapes[0].Time, sc.Scrapes[len(sc.Scrapes)-1].Time)

	groups, err := ruleGroups(rulesFile)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "rules.yaml"), groups.yaml, 0o644); err != nil {
		return err
	}
	test, err := unitTest(sc, series, groups)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, "test.yaml"), test, 0o644)
}

// parse reads one scrape with the Prometheus server's parser and with expfmt's, which must agree,
// and returns its samples as PromQL selectors, with the target's labels, and values.
func parse(body []byte, contentType string) (map[string]string, error) {
	p, err := textparse.New(body, contentType, nil, textparse.ParserOptions{})
	if err != nil || p == nil {
		return nil, fmt.Errorf("textparse: content type %q: %v", contentType, err)
	}
	samples := map[string]string{}
	seen := map[string]bool{}
	for {
		e, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("textparse: %w", err)
		}
		switch e {
		case textparse.EntryType:
			name, _ := p.Type()
			seen[string(name)] = true
		case textparse.EntrySeries:
			var ls labels.Labels
			p.Labels(&ls)
			_, ts, v := p.Series()
			if ts != nil {
				return nil, fmt.Errorf("textparse: %s has a timestamp", ls)
			}
			b := labels.NewBuilder(ls)
			for k, val := range target {
				b.Set(k, val)
			}
			samples[b.Labels().String()] = model.SampleValue(v).String()
		}
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("expfmt: %w", err)
	}
	n := 0
	for _, mf := range mfs {
		n += len(mf.GetMetric())
	}
	if n != len(samples) {
		return nil, fmt.Errorf("expfmt read %d samples, textparse %d", n, len(samples))
	}
	for _, f := range families {
		if !seen[f] || mfs[f] == nil {
			return nil, fmt.Errorf("no metric family %s", f)
		}
	}
	return samples, nil
}

// rules is the PrometheusRule's spec as a plain rules file, and its alerts' labels and annotations.
type rules struct {
	yaml   []byte
	alerts map[string]alert
}

type alert struct {
	Alert       string            `json:"alert"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

func ruleGroups(path string) (rules, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return rules{}, err
	}
	var pr struct {
		Kind string `json:"kind"`
		Spec struct {
			Groups []struct {
				Rules []alert `json:"rules"`
			} `json:"groups"`
		} `json:"spec"`
	}
	var raw struct {
		Spec json.RawMessage `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &pr); err != nil {
		return rules{}, err
	}
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return rules{}, err
	}
	if pr.Kind != "PrometheusRule" {
		return rules{}, fmt.Errorf("%s: kind %q, want PrometheusRule", path, pr.Kind)
	}
	y, err := yaml.JSONToYAML(raw.Spec)
	if err != nil {
		return rules{}, err
	}
	r := rules{yaml: y, alerts: map[string]alert{}}
	for _, g := range pr.Spec.Groups {
		for _, a := range g.Rules {
			r.alerts[a.Alert] = a
		}
	}
	return r, nil
}

// moment is a minute of the simulated clock at which the test asserts the alerts: those firing for
// the failing token; none fire for the healthy one.
type moment struct {
	minute int
	firing []string
}

// moments returns the test's moments, from the failing token's series as scraped: at minute 20 no
// alert (a renewal comes at 25% of a lifetime at the earliest, 15 minutes for an hour-long token, and
// half a lifetime has not passed); AzureTokenRenewalOverdue alone from the minute its condition has
// held for its 5 minutes (half a lifetime since the last success and a failed renewal), and both from
// the minute AzureTokenExpiresSoon's has held for its one (less than 10 minutes left).
func moments(sc scenario, series map[string][]string) ([]moment, error) {
	at := func(name string, extra string) ([]string, error) {
		for sel, v := range series {
			if strings.HasPrefix(sel, `{__name__="`+name+`"`) && strings.Contains(sel, `file="`+sc.Failing.File+`"`) && strings.Contains(sel, extra) {
				return v, nil
			}
		}
		return nil, fmt.Errorf("no series %s for %s", name, sc.Failing.File)
	}
	num := func(vals []string, i int) float64 {
		f, _ := strconv.ParseFloat(vals[i], 64)
		return f
	}
	failures, err := at("azure_rest_api_token_renewals_total", `result="failure"`)
	if err != nil {
		return nil, err
	}
	var vals [3][]string
	for i, name := range []string{"azure_rest_api_token_last_renewal_success_timestamp_seconds", "azure_rest_api_token_token_expiry_timestamp_seconds", "azure_rest_api_token_token_issued_timestamp_seconds"} {
		if vals[i], err = at(name, ""); err != nil {
			return nil, err
		}
	}
	first := -1
	for i := range sc.Scrapes {
		if num(failures, i) > 0 {
			first = i
			break
		}
	}
	if first < 0 {
		return nil, errors.New("the failing token never failed a renewal")
	}
	last := len(sc.Scrapes) - 1
	success, expiry, issued := num(vals[0], last), num(vals[1], last), num(vals[2], last)
	overdue := math.Max(float64(sc.Scrapes[first].Time), success+(expiry-issued)/2) + 5*60
	soon := expiry - 600 + 60
	minute := func(t float64) int { return int(math.Ceil(t/60)) + 1 } // the first whole minute after, and one to spare
	ms := []moment{{20, nil}, {minute(overdue), []string{"AzureTokenRenewalOverdue"}}, {minute(soon), []string{"AzureTokenExpiresSoon", "AzureTokenRenewalOverdue"}}}
	if ms[1].minute >= ms[2].minute {
		ms = append(ms[:1], ms[2])
	}
	return ms, nil
}

var labelRef = regexp.MustCompile(`\{\{ \$labels\.([a-z_]+) \}\}`)

// unitTest returns promtool's rule unit test: the series minute by minute (each minute holds the last
// scrape at or before it), and at each moment the alerts expected.
func unitTest(sc scenario, series map[string][]string, r rules) ([]byte, error) {
	last := sc.Scrapes[len(sc.Scrapes)-1].Time
	minutes := int(last / 60)
	moments, err := moments(sc, series)
	if err != nil {
		return nil, err
	}
	if minutes < moments[len(moments)-1].minute {
		return nil, fmt.Errorf("the scrapes end at %d s, before minute %d", last, moments[len(moments)-1].minute)
	}
	fmt.Printf("moments: %+v\n", moments)
	type inputSeries struct {
		Series string `json:"series"`
		Values string `json:"values"`
	}
	var input []inputSeries
	for _, sel := range slices.Sorted(maps.Keys(series)) {
		vals := make([]string, minutes+1)
		for m := range vals {
			vals[m] = "_" // before the first scrape, or absent from the last one
			for i, s := range sc.Scrapes {
				if s.Time <= int64(m*60) {
					vals[m] = cmp.Or(series[sel][i], "_")
				}
			}
		}
		input = append(input, inputSeries{sel, strings.Join(vals, " ")})
	}
	type expAlert struct {
		ExpLabels      map[string]string `json:"exp_labels"`
		ExpAnnotations map[string]string `json:"exp_annotations"`
	}
	type alertTest struct {
		EvalTime  string     `json:"eval_time"`
		Alertname string     `json:"alertname"`
		ExpAlerts []expAlert `json:"exp_alerts"`
	}
	var tests []alertTest
	for _, m := range moments {
		for _, name := range slices.Sorted(maps.Keys(r.alerts)) {
			a := r.alerts[name]
			exp := []expAlert{}
			if slices.Contains(m.firing, name) {
				ls := map[string]string{"resource": sc.Failing.Resource, "file": sc.Failing.File}
				maps.Copy(ls, target)
				maps.Copy(ls, a.Labels)
				ann := map[string]string{}
				for k, v := range a.Annotations {
					ann[k] = labelRef.ReplaceAllStringFunc(v, func(ref string) string { return ls[labelRef.FindStringSubmatch(ref)[1]] })
				}
				exp = append(exp, expAlert{ls, ann})
			}
			tests = append(tests, alertTest{fmt.Sprintf("%dm", m.minute), name, exp})
		}
	}
	doc := map[string]any{
		"rule_files":          []string{"rules.yaml"},
		"evaluation_interval": "1m",
		"tests": []any{map[string]any{
			"interval":        "1m",
			"input_series":    input,
			"alert_rule_test": tests,
		}},
	}
	return yaml.Marshal(doc)
}

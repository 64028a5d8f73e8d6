//go:build e2e

package main

// The cases of issue 17, one function each, every one asserted by its outcome and by the reason the
// cluster reports (container statuses, termination messages, events, logs), each with a negative
// twin that fails for the stated reason.

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/densify-dev/azure-rest-api-token/internal/entratest"
)

func certAndKeyPEM(t *testing.T, cert *x509.Certificate, key *rsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})...)
}

func slug(path string) string {
	s := strings.TrimSuffix(filepath.Base(path), ".yaml")
	if len(s) > 40 {
		s = s[:40]
	}
	return strings.Trim(s, "-")
}

// Cases 1 and 9: every shipped manifest, generically, by its expectation (expect.go): applied as
// shipped but for the stand-in's authority and CA, in a namespace enforcing "restricted"; the
// token container gets a token from the stand-in and the main container's stand-in (the reader
// image, under the third-party image's name) reads it as the user the manifest gives it. CronJobs
// run through "kubectl create job --from=cronjob/...". The API server must keep every field the
// file sets: one it drops silently (a field of a feature the cluster lacks) fails the run.
func TestManifests(t *testing.T) {
	files, err := shippedManifests(repo)
	if err != nil {
		t.Fatal(err)
	}
	if err := missingExpectations(files); err != nil {
		t.Fatal(err) // loud: a new example must say what it does on the cluster
	}
	for _, file := range files {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			track(t)
			exp := expectations[file]
			if exp.notRun != "" {
				t.Skip("not run on the cluster yet: " + exp.notRun)
			}
			ns := exp.namespace
			if ns == "" {
				ns = "m-" + slug(file)
			}
			e := newEnvIn(t, ns, exp.namespace != "", exp.restricted, 0)
			runManifest(t, e, file, exp)
		})
	}
	for file := range expectations {
		if !slices.Contains(files, file) {
			t.Logf("%s: expected but not in this tree (arrives with another branch)", file)
		}
	}
}

// runManifest applies file's test copy in e, runs it as exp says and checks the reader's reads;
// it returns the reader's pod.
func runManifest(t *testing.T, e *env, file string, exp expectation) pod {
	t.Helper()
	if exp.secret != "" {
		e.secret(exp, "")
	}
	if exp.configMap != "" {
		must(t, "-n", e.ns, "create", "configmap", exp.configMap, "--from-literal=config.yaml=# the forwarder's configuration")
	}
	var change func([]object) []string
	if exp.workloadIdentity {
		change = e.workloadIdentity("prometheus-reader")
	}
	var imds *entratest.MIServer
	if exp.managedIdentity != "" {
		imds = e.imds(exp.managedIdentity)
		change = withIMDS(imds.URL)
	}
	if len(exp.otherTokens) > 0 {
		// Every resource the manifest asks for is one the stand-in knows.
		e.standin.Change(func() {
			for _, resource := range exp.otherTokens {
				e.standin.Audiences[resource] = resource
			}
		})
	}
	objs, out := e.apply(file, change)
	if strings.Contains(out, "Warning:") {
		t.Errorf("kubectl apply warned: %s", out)
	}
	for _, o := range objs {
		if podTemplate(o) == nil {
			continue
		}
		var live object
		if err := kubectlJSON(&live, "-n", e.ns, "get", o["kind"].(string), name(o)); err != nil {
			t.Fatal(err)
		}
		if d := droppedFields(o, live); len(d) > 0 {
			t.Errorf("%s %s: the API server dropped fields the file sets: %q", o["kind"], name(o), d)
		}
	}
	var p pod
	switch exp.kind {
	case "CronJob":
		job := exp.name + "-manual"
		must(t, "-n", e.ns, "create", "job", "--from=cronjob/"+exp.name, job)
		if err := e.waitJob(job, 3*time.Minute); err != nil {
			e.dump()
			t.Fatal(err)
		}
		p = e.onePod("job-name="+job, "the job's pod", 30*time.Second, func(pod) error { return nil })
	case "Deployment":
		if _, err := kubectl("-n", e.ns, "rollout", "status", "deployment/"+exp.name, "--timeout=180s"); err != nil {
			e.dump()
			t.Fatal(err)
		}
		var selector []string
		for _, o := range objs {
			if o["kind"] == "Deployment" && name(o) == exp.name {
				for k, v := range field(o, false, "spec", "selector", "matchLabels") {
					selector = append(selector, fmt.Sprintf("%s=%v", k, v))
				}
			}
		}
		p = e.onePod(strings.Join(selector, ","), "the deployment's pod", 60*time.Second, func(p pod) error {
			if !p.ready() {
				return fmt.Errorf("pod %s not Ready", p.Metadata.Name)
			}
			return nil
		})
	default:
		t.Fatalf("expectation for %s: unknown kind %q", file, exp.kind)
	}
	var logs string
	e.eventually(30*time.Second, "the reader's first read", func() error {
		logs = e.logs(p.Metadata.Name, exp.reader, false)
		if !readerLine(exp.readerUID).MatchString(logs) {
			return fmt.Errorf("no good read as uid %d in:\n%s", exp.readerUID, logs)
		}
		return nil
	})
	if exp.hardened && !hardenedLine(exp.readerUID).MatchString(logs) {
		t.Errorf("the reader's container is not hardened as its securityContext asks:\n%s", logs)
	}
	if strings.Contains(logs, "BAD") {
		t.Errorf("a bad read:\n%s", logs)
	}
	t.Logf("reader (%s):\n%s", exp.reader, logs)
	if exp.workloadIdentity {
		e.checkWorkloadIdentity(p, file == "deploy/workload-identity.yaml")
	}
	if imds != nil {
		e.checkManagedIdentity(p, exp, imds)
	}
	for path, resource := range exp.otherTokens {
		// The reader binary of the reader's image, run in its container (as its user), on the file.
		out, err := kubectl("-n", e.ns, "exec", p.Metadata.Name, "-c", exp.reader, "--", "/reader", "-file", path, "-audience", resource)
		t.Logf("%s: %s", path, out)
		want := regexp.MustCompile(fmt.Sprintf(`(?m)^reader: uid=%d gid=\d+ read 1: mode -rw-r--r-- owner 65532:65532, \d+ bytes, aud=%s, exp=.*, format json expires_on=\d+$`,
			exp.readerUID, regexp.QuoteMeta(resource)))
		if err != nil || !want.MatchString(out) {
			t.Errorf("%s: not a valid token for %q as uid %d: %v", path, resource, exp.readerUID, err)
		}
	}
	if exp.metricsPort != 0 {
		e.checkMetrics(p, exp)
	}
	return p
}

// imds starts an IMDS stand-in for e on the bridge's gateway, where a pod reaches it as a node's
// pods reach 169.254.169.254, holding a user-assigned identity of clientID ("" for none: only the
// default ones).
func (e *env) imds(clientID string) *entratest.MIServer {
	e.t.Helper()
	mi, err := entratest.NewMIServerAt(entratest.IMDS, "", gatewayIP+":0")
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(mi.Close)
	if clientID != "" {
		mi.Users = append(mi.Users, entratest.ManagedIdentity{ClientID: clientID, ObjectID: "7d1c2b3a-aaaa-4bbb-8ccc-000000000010",
			ResourceID: "/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/rg-test/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-k8s-check"})
	}
	return mi
}

// withIMDS points every container of the product's image at the IMDS stand-in:
// AZURE_POD_IDENTITY_AUTHORITY_HOST, managed identity's counterpart of AZURE_AUTHORITY_HOST.
func withIMDS(url string) func([]object) []string {
	return func(objs []object) []string {
		var changes []string
		for _, o := range objs {
			tmpl := podTemplate(o)
			if tmpl == nil {
				continue
			}
			for _, c := range containers(field(tmpl, false, "spec")) {
				if isProduct(c) {
					setEnv(c, "AZURE_POD_IDENTITY_AUTHORITY_HOST", url)
					changes = append(changes, fmt.Sprintf("%s %s: container %s: + env AZURE_POD_IDENTITY_AUTHORITY_HOST=%s", o["kind"], name(o), c["name"], url))
				}
			}
		}
		return changes
	}
}

// checkManagedIdentity: the token came from the IMDS stand-in, for the manifest's user-assigned
// identity, asked for from the pod's address; the Entra stand-in saw nothing (no secret anywhere).
// The manifest's NetworkPolicies are created, but this cluster has no network policy engine: they
// are not enforced here, and nothing is claimed about them.
func (e *env) checkManagedIdentity(p pod, exp expectation, mi *entratest.MIServer) {
	e.t.Helper()
	rs := mi.Requests()
	if len(rs) == 0 {
		e.t.Fatal("the IMDS stand-in got no request")
	}
	for _, r := range rs {
		if !strings.Contains(r.Query, "client_id="+exp.managedIdentity) || !strings.HasPrefix(r.RemoteAddr, p.Status.PodIP+":") {
			e.t.Errorf("IMDS request %s?%s from %s: want client_id=%s from the pod's %s", r.Path, r.Query, r.RemoteAddr, exp.managedIdentity, p.Status.PodIP)
		}
	}
	if n := len(e.standin.Requests()); n != 0 {
		e.t.Errorf("the Entra stand-in got %d requests: want none, managed identity needs no Entra exchange", n)
	}
	log := e.logs(p.Metadata.Name, exp.sidecar, false)
	if !strings.Contains(log, "source=IMDS") || !strings.Contains(log, exp.managedIdentity) {
		e.t.Errorf("the sidecar's log does not name IMDS and the identity %s:\n%s", exp.managedIdentity, log)
	}
	out := must(e.t, "-n", e.ns, "get", "networkpolicy", "-o", "name")
	e.t.Logf("network policies created (accepted by the API server, NOT enforced: this cluster has no network policy engine):\n%s", out)
}

// checkMetrics scrapes the token container's /metrics on the pod's IP from the host: a series for
// every token file, no failed renewal, the credential named.
func (e *env) checkMetrics(p pod, exp expectation) {
	e.t.Helper()
	url := fmt.Sprintf("http://%s:%d/metrics", p.Status.PodIP, exp.metricsPort)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Get(url)
	if err != nil {
		e.t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		e.t.Fatalf("GET %s: %s, %v", url, resp.Status, err)
	}
	metrics := string(b)
	files := map[string]string{"/var/run/azure-token/token": entratest.PrometheusResource}
	for path, resource := range exp.otherTokens {
		files[path] = resource
	}
	for path, resource := range files {
		want := fmt.Sprintf(`azure_rest_api_token_token_expiry_timestamp_seconds{resource="%s",file="%s"} `, resource, path)
		if !strings.Contains(metrics, want) {
			e.t.Errorf("GET %s: no %s", url, want)
		}
	}
	if regexp.MustCompile(`(?m)result="failure"\} [1-9]`).MatchString(metrics) {
		e.t.Errorf("GET %s: a failed renewal", url)
	}
	if !regexp.MustCompile(`(?m)^azure_rest_api_token_build_info\{.*credential="client secret",mode="refresh"\} 1$`).MatchString(metrics) {
		e.t.Errorf("GET %s: no build_info naming the client secret and refresh mode", url)
	}
	var samples []string
	for _, l := range strings.Split(metrics, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			samples = append(samples, l)
		}
	}
	e.t.Logf("GET %s from the host:\n  %s", url, strings.Join(samples, "\n  "))
}

// managed-identity.yaml's negative twin: an IMDS stand-in that does not hold the manifest's
// user-assigned identity (IMDS answers 400 "Identity not found"). The sidecar's log names the
// identity asked for, its startupProbe never passes, and the app never starts.
func TestManagedIdentityUnknown(t *testing.T) {
	t.Parallel()
	track(t)
	file := "deploy/managed-identity.yaml"
	exp := expectations[file]
	e := newEnvIn(t, exp.namespace, true, true, 0)
	mi := e.imds("")
	e.apply(file, withIMDS(mi.URL))
	e.appNeverStarts(exp, "app.kubernetes.io/name=prometheus-reader-mi", "Identity not found", exp.managedIdentity)
	if n := len(mi.Requests()); n == 0 {
		t.Error("the IMDS stand-in got no request")
	}
}

// sidecar-resources-metrics.yaml's negative twin: the Entra stand-in does not know the second
// resource (Azure Resource Manager). The sidecar's log names it with AADSTS500011, its
// startupProbe (-check, every token file) never passes, and the app never starts, although the
// first token was issued.
func TestResourcesUnknownResource(t *testing.T) {
	t.Parallel()
	track(t)
	file := "deploy/sidecar-resources-metrics.yaml"
	exp := expectations[file]
	e := newEnv(t, "resources-unknown", true, 0)
	e.standin.Change(func() { delete(e.standin.Audiences, entratest.ManagementResource) })
	e.secret(exp, "")
	e.apply(file, nil)
	e.appNeverStarts(exp, "app.kubernetes.io/name=azure-reader", "AADSTS500011", entratest.ManagementResource)
}

// appNeverStarts waits for the one pod with selector whose sidecar's log holds every one of want,
// then checks that its reader container never started.
func (e *env) appNeverStarts(exp expectation, selector string, want ...string) {
	e.t.Helper()
	var log, podName string
	has := func(log string) bool {
		for _, w := range want {
			if !strings.Contains(log, w) {
				return false
			}
		}
		return true
	}
	e.eventually(90*time.Second, fmt.Sprintf("the sidecar's log naming %q", want), func() error {
		ps := e.pods(selector)
		if len(ps) != 1 {
			return fmt.Errorf("%d pods", len(ps))
		}
		podName = ps[0].Metadata.Name
		// The current run's log, or the last one's while the kubelet backs off a restart.
		log, _ = kubectl("-n", e.ns, "logs", podName, "-c", exp.sidecar)
		if !has(log) {
			log, _ = kubectl("-n", e.ns, "logs", podName, "-c", exp.sidecar, "--previous")
		}
		if !has(log) {
			return fmt.Errorf("sidecar log:\n%s", log)
		}
		return nil
	})
	e.t.Logf("sidecar log:\n%s", log)
	// Give the app the time it would have needed (in a good run it starts within seconds), then
	// check that it never started.
	time.Sleep(15 * time.Second)
	ps := e.pods(selector)
	if len(ps) != 1 || ps[0].Metadata.Name != podName {
		e.t.Fatalf("%d pods, want the one pod %s", len(ps), podName)
	}
	app, _ := ps[0].container(exp.reader)
	if app.State.Running != nil || app.State.Terminated != nil || app.LastState.Terminated != nil {
		e.dump()
		e.t.Errorf("the app started without a valid token: %+v", app.State)
	}
	side, _ := ps[0].container(exp.sidecar)
	waiting := ""
	if app.State.Waiting != nil {
		waiting = app.State.Waiting.Reason
	}
	e.t.Logf("pod %s: sidecar started=%v restarts=%d; app never started (waiting: %s)", podName, side.Started != nil && *side.Started, side.RestartCount, waiting)
}

// Case 1's negative twin: the upstream CronJob, unchanged, in a namespace that enforces
// "restricted": the Job controller cannot create its pod, and the event says why.
func TestUpstreamCronJobRefusedWhereRestricted(t *testing.T) {
	t.Parallel()
	track(t)
	e := newEnv(t, "upstream-restricted", true, 0)
	exp := expectations["deploy/testdata/densify-upstream-cronjob.yaml"]
	e.secret(exp, "")
	e.apply("deploy/testdata/densify-upstream-cronjob.yaml", nil)
	must(t, "-n", e.ns, "create", "job", "--from=cronjob/densify-job", "refused")
	e.eventually(60*time.Second, "a FailedCreate event naming PodSecurity", func() error {
		ev := e.events()
		if !regexp.MustCompile(`FailedCreate: .*violates PodSecurity "restricted:latest"`).MatchString(ev) {
			return fmt.Errorf("events:\n%s", ev)
		}
		t.Logf("events:\n%s", ev)
		return nil
	})
	if ps := e.pods(""); len(ps) != 0 {
		t.Errorf("%d pods exist", len(ps))
	}
}

// Case 2: a wrong client secret. The init container fails with AADSTS7000215 in its log and its
// termination message, the forwarder never starts, and the Job fails with BackoffLimitExceeded.
// Its positive twin is TestManifests' run of the same file with the right secret.
func TestWrongClientSecret(t *testing.T) {
	t.Parallel()
	track(t)
	e := newEnv(t, "wrong-secret", true, 0)
	exp := expectations["deploy/densify-cronjob.yaml"]
	e.secret(exp, "not-the-secret")
	must(t, "-n", e.ns, "create", "configmap", exp.configMap, "--from-literal=config.yaml=#")
	e.apply("deploy/densify-cronjob.yaml", nil)
	must(t, "-n", e.ns, "create", "job", "--from=cronjob/densify-job", "wrong")
	var p pod
	e.eventually(2*time.Minute, "a pod's init container to fail", func() error {
		for _, q := range e.pods("job-name=wrong") {
			c, _ := q.container("azure-token")
			if _, _, ok := c.terminated(); ok {
				p = q
				return nil
			}
		}
		return fmt.Errorf("no init container has terminated")
	})
	c, _ := p.container("azure-token")
	code, msg, _ := c.terminated()
	t.Logf("init container terminated: exit %d, message %q", code, msg)
	if code != 10 || !strings.Contains(msg, "AADSTS7000215") || !strings.Contains(msg, "wrong client secret") {
		t.Errorf("termination: exit %d, message %q; want exit 10 and AADSTS7000215 (wrong client secret)", code, msg)
	}
	if logs := e.logs(p.Metadata.Name, "azure-token", false); !strings.Contains(logs, "AADSTS7000215") || !strings.Contains(logs, "exit_status=10") {
		t.Errorf("init container log:\n%s", logs)
	}
	f, _ := p.container("data-forwarder")
	if f.State.Running != nil || f.State.Terminated != nil || f.LastState.Terminated != nil || f.State.Waiting == nil || f.State.Waiting.Reason != "PodInitializing" {
		t.Errorf("the forwarder must never start: %+v", f)
	}
	if err := e.waitJob("wrong", 4*time.Minute); err == nil || !strings.Contains(err.Error(), "BackoffLimitExceeded") {
		t.Errorf("job: %v, want failed with BackoffLimitExceeded", err)
	}
	if n := len(e.standin.Requests()); n != 3 {
		t.Errorf("the stand-in got %d requests, want 3 (backoffLimit 2: three pods, one request each)", n)
	}
}

// Case 3: the native sidecar Deployment. The stand-in holds the first token back (a 503 with
// Retry-After: 6), so the gate is visible: the app starts only after the sidecar's startupProbe
// (-check) passed, i.e. after the token was written. With 90-second tokens the app reads only valid
// ones across 3 renewals or more. Then "kubectl rollout restart" and a pod deletion each leave one
// Ready pod, none stuck. The negative twin: the same without the startupProbe, and the app starts
// before the token exists, reads nothing, and fails.
func TestNativeSidecar(t *testing.T) {
	t.Parallel()
	const file = "deploy/sidecar-deployment.yaml"
	exp := expectations[file]
	holdBack := entratest.Response{Status: http.StatusServiceUnavailable, Header: map[string]string{"Retry-After": "6"},
		Body: string(entratest.ErrorBody(http.StatusServiceUnavailable, "temporarily_unavailable", 0, "held back by the test"))}

	t.Run("startupProbe gates the app; renewals; restart and deletion", func(t *testing.T) {
		t.Parallel()
		track(t)
		e := newEnv(t, "sidecar", true, 90*time.Second)
		e.standin.Enqueue(holdBack)
		e.secret(exp, "")
		e.apply(file, shortTokens)
		p := e.onePod("", "the pod Ready", 3*time.Minute, func(p pod) error {
			if !p.ready() {
				return fmt.Errorf("pod %s not Ready", p.Metadata.Name)
			}
			return nil
		})
		reqs := e.standin.Requests()
		if len(reqs) < 2 {
			t.Fatalf("the stand-in got %d requests, want the held-back one and a second", len(reqs))
		}
		firstToken := reqs[1].Time
		side, _ := p.container("azure-token")
		app, _ := p.container("app")
		if side.State.Running == nil || app.State.Running == nil || app.RestartCount != 0 {
			t.Fatalf("sidecar %+v, app %+v: want both running, the app never restarted", side, app)
		}
		t.Logf("sidecar started %s, first token %s, app started %s",
			side.State.Running.StartedAt.Format(time.RFC3339), firstToken.Format(time.RFC3339Nano), app.State.Running.StartedAt.Format(time.RFC3339))
		if app.State.Running.StartedAt.Before(firstToken.Truncate(time.Second)) ||
			app.State.Running.StartedAt.Before(side.State.Running.StartedAt.Add(5*time.Second)) {
			t.Errorf("the app started before the sidecar's first token")
		}
		// The app's first read, right at its start, found a valid token: the reader does not wait.
		if logs := e.logs(p.Metadata.Name, "app", false); !regexp.MustCompile(`(?m)^reader: uid=\d+ gid=\d+ read 1: mode`).MatchString(logs) {
			t.Errorf("the app's first read was not a good one:\n%s", logs)
		}
		t.Logf("sidecar log:\n%s", e.logs(p.Metadata.Name, "azure-token", false))
		// Renewals: the first token and 3 more, every read valid.
		e.eventually(6*time.Minute, "3 renewals", func() error {
			if n := len(e.standin.Requests()) - 2; n < 3 {
				return fmt.Errorf("%d renewals so far", n)
			}
			return nil
		})
		time.Sleep(3 * time.Second) // a read or more of the last token
		logs := e.logs(p.Metadata.Name, "app", false)
		distinct := len(readerLine(exp.readerUID).FindAllString(logs, -1))
		t.Logf("app's reads:\n%s", logs)
		if distinct < 4 || strings.Contains(logs, "BAD") {
			t.Errorf("want 4 or more distinct valid tokens and no bad read, got %d", distinct)
		}
		if p2 := e.pods(""); len(p2) != 1 || func() bool { c, _ := p2[0].container("app"); return c.RestartCount != 0 }() {
			t.Errorf("the app restarted, or the pod changed")
		}
		sideLogs := e.logs(p.Metadata.Name, "azure-token", false)
		if n := strings.Count(sideLogs, "renewed access token"); n < 3 {
			t.Errorf("sidecar logged %d renewals:\n%s", n, sideLogs)
		}

		// rollout restart, then a pod deletion: one Ready pod each time, the old one gone.
		must(t, "-n", e.ns, "rollout", "restart", "deployment/"+exp.name)
		if _, err := kubectl("-n", e.ns, "rollout", "status", "deployment/"+exp.name, "--timeout=180s"); err != nil {
			e.dump()
			t.Fatal(err)
		}
		p2 := e.onePod("", "one Ready pod after rollout restart", 90*time.Second, func(q pod) error {
			if q.Metadata.UID == p.Metadata.UID || !q.ready() {
				return fmt.Errorf("pod %s ready=%v", q.Metadata.Name, q.ready())
			}
			return nil
		})
		e.eventually(60*time.Second, "the old pod gone", func() error { return podGone(e, p.Metadata.Name) })
		must(t, "-n", e.ns, "delete", "pod", p2.Metadata.Name, "--timeout=60s")
		e.onePod("", "one Ready pod after the deletion", 2*time.Minute, func(q pod) error {
			if q.Metadata.UID == p2.Metadata.UID || !q.ready() {
				return fmt.Errorf("pod %s ready=%v", q.Metadata.Name, q.ready())
			}
			return nil
		})
	})

	t.Run("negative twin: without the startupProbe the app starts before the token", func(t *testing.T) {
		t.Parallel()
		track(t)
		e := newEnv(t, "sidecar-noprobe", true, 90*time.Second)
		e.standin.Enqueue(holdBack)
		e.secret(exp, "")
		e.apply(file, func(objs []object) []string {
			for _, o := range objs {
				if tmpl := podTemplate(o); tmpl != nil {
					for _, c := range containers(field(tmpl, false, "spec")) {
						if c["name"] == exp.sidecar {
							delete(c, "startupProbe")
						}
					}
				}
			}
			return append(shortTokens(objs), "container azure-token: - startupProbe (the twin's break)")
		})
		p := e.onePod("", "the app to fail its first read", 2*time.Minute, func(p pod) error {
			if c, _ := p.container("app"); c.RestartCount == 0 {
				return fmt.Errorf("app restarts %d", c.RestartCount)
			}
			return nil
		})
		app, _ := p.container("app")
		_, msg, _ := app.terminated()
		if prev, err := kubectl("-n", e.ns, "logs", p.Metadata.Name, "-c", "app", "--previous"); err == nil {
			msg += "\n" + prev // the log too, while the kubelet keeps it
		}
		t.Logf("the app's first run ended: %s", msg)
		if !regexp.MustCompile(`read 1 of /var/run/azure-token/token: BAD: .*no such file or directory`).MatchString(msg) {
			t.Errorf("want the app's first read to find no token file")
		}
	})
}

// shortTokens is the change every case with short-lived tokens needs: the sidecar's probes (-check)
// pass while the token is valid for more than BEARER_TOKEN_MIN_VALIDITY, 5 minutes by default,
// which a token of a few minutes never is; 20 s.
func shortTokens(objs []object) []string {
	for _, o := range objs {
		if tmpl := podTemplate(o); tmpl != nil {
			for _, c := range containers(field(tmpl, false, "spec")) {
				if isProduct(c) {
					setEnv(c, "BEARER_TOKEN_MIN_VALIDITY", "20s")
				}
			}
		}
	}
	return []string{"container azure-token: + env BEARER_TOKEN_MIN_VALIDITY=20s (short-lived tokens: the probes' margin)"}
}

func podGone(e *env, name string) error {
	out, err := kubectl("-n", e.ns, "get", "pod", name, "--ignore-not-found", "-o", "name")
	if err != nil {
		return err
	}
	if strings.TrimSpace(out) != "" {
		return fmt.Errorf("pod %s still exists", name)
	}
	return nil
}

// sidecarJob returns, from the native sidecar Deployment's pod template, a Job whose app reads the
// token for 5 seconds and exits; with asRegular, the sidecar moved to containers, as on a cluster
// without native sidecars.
func sidecarJob(e *env, name string, asRegular bool) func([]object) []string {
	return func(objs []object) []string {
		tmpl := podTemplate(objs[0])
		spec := field(tmpl, false, "spec")
		spec["restartPolicy"] = "Never"
		for _, c := range containers(spec) {
			if c["name"] == "app" {
				c["args"] = []any{"-file", "/var/run/azure-token/token", "-audience", entratest.PrometheusResource, "-for", "5s", "-every", "1s"}
			}
		}
		changes := []string{"Deployment prometheus-reader -> Job " + name + " with its pod template, restartPolicy Never; app: args -for 5s"}
		if asRegular {
			init := spec["initContainers"].([]any)
			side := init[0].(object)
			delete(side, "restartPolicy")
			delete(side, "startupProbe")
			spec["containers"] = append(spec["containers"].([]any), side)
			delete(spec, "initContainers")
			changes = append(changes, "azure-token moved to containers, without restartPolicy and startupProbe (the twin's break)")
		}
		objs[0] = object{"apiVersion": "batch/v1", "kind": "Job", "metadata": object{"name": name},
			"spec": object{"backoffLimit": 0, "template": tmpl}}
		return changes
	}
}

// Case 4: a Job with the native sidecar completes; the sidecar gets SIGTERM after the app has
// exited, and exits 0. The negative twin: with the sidecar as a regular container the Job never
// completes, since the sidecar runs on.
func TestSidecarJob(t *testing.T) {
	t.Parallel()
	exp := expectations["deploy/sidecar-deployment.yaml"]
	t.Run("native sidecar: the Job completes, the sidecar exits 0 after the app", func(t *testing.T) {
		t.Parallel()
		track(t)
		e := newEnv(t, "sidecar-job", true, 0)
		e.secret(exp, "")
		e.apply("deploy/sidecar-deployment.yaml", sidecarJob(e, "with-sidecar", false))
		if err := e.waitJob("with-sidecar", 3*time.Minute); err != nil {
			e.dump()
			t.Fatal(err)
		}
		p := e.onePod("job-name=with-sidecar", "the job's pod", 30*time.Second, func(p pod) error {
			if s, _ := p.container("azure-token"); s.State.Terminated == nil {
				return fmt.Errorf("sidecar not terminated yet")
			}
			return nil
		})
		side, _ := p.container("azure-token")
		app, _ := p.container("app")
		if p.Status.Phase != "Succeeded" || app.State.Terminated == nil || app.State.Terminated.ExitCode != 0 {
			t.Fatalf("pod %s, app %+v", p.Status.Phase, app.State)
		}
		t.Logf("app finished %s; sidecar finished %s with exit %d (%s)", app.State.Terminated.FinishedAt, side.State.Terminated.FinishedAt,
			side.State.Terminated.ExitCode, side.State.Terminated.Reason)
		if side.State.Terminated.ExitCode != 0 || side.State.Terminated.FinishedAt.Before(app.State.Terminated.FinishedAt) {
			t.Errorf("want the sidecar to exit 0 after the app")
		}
		if logs := e.logs(p.Metadata.Name, "azure-token", false); !strings.Contains(logs, "stopping; the token file stays in place") {
			t.Errorf("sidecar log, want its SIGTERM stop:\n%s", logs)
		} else {
			t.Logf("sidecar log:\n%s", logs)
		}
	})
	t.Run("negative twin: the sidecar as a regular container keeps the Job running", func(t *testing.T) {
		t.Parallel()
		track(t)
		e := newEnv(t, "sidecar-job-regular", true, 0)
		e.secret(exp, "")
		e.apply("deploy/sidecar-deployment.yaml", sidecarJob(e, "regular", true))
		e.onePod("job-name=regular", "the app to finish", 3*time.Minute, func(p pod) error {
			if a, _ := p.container("app"); a.State.Terminated == nil {
				return fmt.Errorf("app not finished")
			}
			return nil
		})
		time.Sleep(20 * time.Second)
		p := e.onePod("job-name=regular", "the pod", 10*time.Second, func(pod) error { return nil })
		side, _ := p.container("azure-token")
		var j struct {
			Status struct {
				Active     int         `json:"active"`
				Conditions []condition `json:"conditions"`
			} `json:"status"`
		}
		if err := kubectlJSON(&j, "-n", e.ns, "get", "job", "regular"); err != nil {
			t.Fatal(err)
		}
		t.Logf("20 s after the app exited: pod %s, sidecar running %v, job active %d, conditions %+v", p.Status.Phase, side.State.Running != nil, j.Status.Active, j.Status.Conditions)
		if p.Status.Phase != "Running" || side.State.Running == nil || j.Status.Active != 1 || len(j.Status.Conditions) != 0 {
			t.Errorf("want the pod Running with its sidecar, the Job active and not complete")
		}
	})
}

// Case 5: the init container runs again over the emptyDir that survived its pod sandbox (crictl
// stopp, as after a node restart). With BEARER_TOKEN_FILE_REPLACE=true the pod recovers with a
// fresh token; without it (the shipped default), the init container fails with the documented
// message and the pod does not start.
func TestInitRerunOverSurvivingEmptyDir(t *testing.T) {
	t.Parallel()
	const file = "deploy/init-container-app.yaml"
	exp := expectations[file]
	run := func(t *testing.T, ns string, replace bool) (*env, pod) {
		e := newEnv(t, ns, true, 0)
		e.secret(exp, "")
		var change func([]object) []string
		if replace {
			change = func(objs []object) []string {
				for _, c := range containers(field(podTemplate(objs[0]), false, "spec")) {
					if isProduct(c) {
						setEnv(c, "BEARER_TOKEN_FILE_REPLACE", "true")
					}
				}
				return []string{"container azure-token: + env BEARER_TOKEN_FILE_REPLACE=true (README, \"An init container that runs again\")"}
			}
		}
		e.apply(file, change)
		if _, err := kubectl("-n", e.ns, "rollout", "status", "deployment/"+exp.name, "--timeout=180s"); err != nil {
			e.dump()
			t.Fatal(err)
		}
		p := e.onePod("", "the pod Ready", time.Minute, func(p pod) error {
			if !p.ready() {
				return fmt.Errorf("not Ready")
			}
			return nil
		})
		id, err := crictl("pods", "--namespace", e.ns, "--name", p.Metadata.Name, "-q")
		if err != nil || strings.TrimSpace(id) == "" {
			t.Fatalf("crictl pods: %v %q", err, id)
		}
		if out, err := crictl("stopp", strings.TrimSpace(id)); err != nil {
			t.Fatalf("crictl stopp: %v: %s", err, out)
		}
		t.Logf("stopped the pod sandbox %s of %s", strings.TrimSpace(id)[:12], p.Metadata.Name)
		return e, p
	}
	t.Run("BEARER_TOKEN_FILE_REPLACE=true: the pod recovers", func(t *testing.T) {
		t.Parallel()
		track(t)
		e, p := run(t, "rerun-replace", true)
		q := e.onePod("", "the pod Ready again on a new sandbox", 3*time.Minute, func(q pod) error {
			if n := len(e.standin.Requests()); n < 2 {
				return fmt.Errorf("%d token requests: the init container has not run again", n)
			}
			if !q.ready() {
				return fmt.Errorf("not Ready")
			}
			return nil
		})
		if q.Metadata.UID != p.Metadata.UID {
			t.Fatalf("a new pod: the kubelet did not re-run the init container in place")
		}
		logs := e.logs(p.Metadata.Name, "azure-token", false)
		t.Logf("the init container's second run:\n%s", logs)
	})
	t.Run("negative twin: without it, the documented message and no start", func(t *testing.T) {
		t.Parallel()
		track(t)
		e, p := run(t, "rerun-default", false)
		q := e.onePod("", "the init container to fail on its second run", 3*time.Minute, func(q pod) error {
			c, _ := q.container("azure-token")
			_, msg, ok := c.terminated()
			if !ok || !strings.Contains(msg, "already exists") {
				return fmt.Errorf("init container %+v", c)
			}
			return nil
		})
		if q.Metadata.UID != p.Metadata.UID {
			t.Fatalf("a new pod: the kubelet did not re-run the init container in place")
		}
		c, _ := q.container("azure-token")
		code, msg, _ := c.terminated()
		t.Logf("init container: exit %d, message %q", code, msg)
		if !strings.Contains(msg, "an init container re-run on an emptyDir that survived it") || !strings.Contains(msg, "BEARER_TOKEN_FILE_REPLACE=true") {
			t.Errorf("want the documented message")
		}
		if q.ready() {
			t.Errorf("the pod must not be Ready")
		}
	})
}

func crictl(args ...string) (string, error) {
	out, err := execOut(k.bin+"/crictl", append([]string{"--config", k.path("crictl.yaml")}, args...)...)
	return out, err
}

// Case 6: Secret rotation. The stand-in's app gets a new client secret and refuses the old one:
// the sidecar's renewals fail with AADSTS7000215 while the app keeps reading the current, valid
// token (the negative twin: the rotation not yet in the Secret). Then the Secret is updated, the
// kubelet updates the mounted file in place, and the sidecar's next renewal uses the new secret,
// with no restart.
func TestSecretRotation(t *testing.T) {
	t.Parallel()
	track(t)
	const file = "deploy/sidecar-deployment.yaml"
	exp := expectations[file]
	// 3-minute tokens: renewed every 30 s (the policy's floor), and a failed renewal is retried
	// after 10, 20, 40 and 80 s, within the current token's life: time for the kubelet to update
	// the mounted Secret while the app keeps reading a valid token.
	e := newEnv(t, "rotation", true, 3*time.Minute)
	e.secret(exp, "")
	e.apply(file, shortTokens)
	p := e.onePod("", "the pod Ready", 3*time.Minute, func(p pod) error {
		if !p.ready() {
			return fmt.Errorf("not Ready")
		}
		return nil
	})
	const newSecret = "Rotated~8Q~another-not-real-secret.42"
	rotated := time.Now()
	e.standin.Change(func() {
		app := e.standin.Apps[entratest.DefaultClientID]
		app.Secret = newSecret
		e.standin.Apps[entratest.DefaultClientID] = app
	})
	t.Log("the stand-in now takes only the new client secret")
	e.eventually(3*time.Minute, "a renewal refused with AADSTS7000215", func() error {
		logs := e.logs(p.Metadata.Name, "azure-token", false)
		if !strings.Contains(logs, "renewing access token failed; the token file keeps the current token") || !strings.Contains(logs, "AADSTS7000215") {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	t.Log("negative twin: renewals with the old secret are refused (AADSTS7000215); the file keeps the current token")
	// The Secret, updated the way it was made.
	e.servicePrincipal(exp.secretKey, newSecret)
	y, err := kubectlIn(e.dir, nil, "-n", e.ns, "create", "secret", "generic", exp.secret, "--from-file="+exp.secretKey, "--dry-run=client", "-o", "yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kubectlIn("", []byte(y), "-n", e.ns, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	updated := time.Now()
	e.eventually(4*time.Minute, "a renewal with the new secret", func() error {
		for _, r := range requestsSince(e.standin, updated) {
			if r.Form.Get("client_secret") == newSecret {
				return nil
			}
		}
		return fmt.Errorf("none since the Secret was updated")
	})
	e.eventually(30*time.Second, "the sidecar to log the renewal", func() error {
		logs := e.logs(p.Metadata.Name, "azure-token", false)
		i := strings.LastIndex(logs, "renewing access token failed")
		if i < 0 || !strings.Contains(logs[i:], "renewed access token") {
			return fmt.Errorf("no renewal after the refusals")
		}
		return nil
	})
	q := e.pods("")
	if len(q) != 1 || q[0].Metadata.UID != p.Metadata.UID {
		t.Fatalf("the pod changed")
	}
	side, _ := q[0].container("azure-token")
	app, _ := q[0].container("app")
	appLogs := e.logs(p.Metadata.Name, "app", false)
	if side.RestartCount != 0 || app.RestartCount != 0 || strings.Contains(appLogs, "BAD") {
		t.Errorf("sidecar restarts %d, app restarts %d, app reads:\n%s", side.RestartCount, app.RestartCount, appLogs)
	}
	t.Logf("rotated at %s, Secret updated at %s, new secret used with no restart", rotated.Format(time.TimeOnly), updated.Format(time.TimeOnly))
}

// Case 8: a shipped example without its seccompProfile breaks "restricted": kubectl warns, and
// the API server refuses its pods (the ReplicaSet's FailedCreate event says why); no pod exists.
// Its positive twin is TestManifests' run of the file as shipped.
func TestPodSecurityRefusesWithoutSeccomp(t *testing.T) {
	t.Parallel()
	track(t)
	const file = "deploy/init-container-app.yaml"
	exp := expectations[file]
	e := newEnv(t, "no-seccomp", true, 0)
	e.secret(exp, "")
	_, out := e.apply(file, func(objs []object) []string {
		spec := field(podTemplate(objs[0]), false, "spec")
		delete(field(spec, false, "securityContext"), "seccompProfile")
		for _, c := range containers(spec) {
			if sc := field(c, false, "securityContext"); sc != nil {
				delete(sc, "seccompProfile")
			}
		}
		return []string{"- seccompProfile everywhere (the twin's break)"}
	})
	t.Logf("kubectl apply: %s", out)
	if !strings.Contains(out, `would violate PodSecurity "restricted:latest"`) || !strings.Contains(out, "seccompProfile") {
		t.Errorf("want kubectl's PodSecurity warning naming seccompProfile")
	}
	e.eventually(60*time.Second, "FailedCreate naming seccompProfile", func() error {
		ev := e.events()
		if !regexp.MustCompile(`FailedCreate: .*violates PodSecurity "restricted:latest": seccompProfile`).MatchString(ev) {
			return fmt.Errorf("events:\n%s", ev)
		}
		t.Logf("events:\n%s", ev)
		return nil
	})
	if ps := e.pods(""); len(ps) != 0 {
		t.Errorf("%d pods exist", len(ps))
	}
}

// The examples' placeholder client ID, and the app registration's client ID the test copies use
// in its place.
const (
	placeholderGUID = "00000000-0000-0000-0000-000000000000"
	wiTestClientID  = "5e1f9a2b-3c4d-4e5f-8a6b-7c8d9e0f1a2b"
)

// workloadIdentity returns the change that plays the azure-workload-identity webhook for the
// ServiceAccount sa (see mutateLikeWebhook), and registers at the stand-in the app the
// ServiceAccount's annotation names, with a federated credential for
// system:serviceaccount:NAMESPACE:prometheus-reader whose keys are the cluster's own, fetched as
// Entra fetches them. A placeholder client ID (the all-zero GUID) becomes wiTestClientID.
func (e *env) workloadIdentity(sa string) func([]object) []string {
	return func(objs []object) []string {
		var clientID string
		var changes []string
		for _, o := range objs {
			if o["kind"] == "ServiceAccount" {
				annotations := field(o, false, "metadata", "annotations")
				clientID, _ = annotations[wiClientIDAnno].(string)
				// The shipped files annotate the all-zero GUID, a placeholder the program refuses
				// (as it should): the test copy gets an app's client ID in its place, as a user
				// fills in theirs.
				if clientID == placeholderGUID {
					clientID = wiTestClientID
					annotations[wiClientIDAnno] = clientID
					changes = append(changes, fmt.Sprintf("ServiceAccount %s: annotation %s %s (the file's placeholder) -> %s", name(o), wiClientIDAnno, placeholderGUID, clientID))
				}
			}
		}
		if clientID == "" {
			e.t.Fatalf("no ServiceAccount with %s", wiClientIDAnno)
		}
		e.standin.Change(func() {
			e.standin.Apps[clientID] = entratest.App{ClientID: clientID, DisplayName: "workload-identity",
				Federated: []entratest.FederatedCredential{{Issuer: apiServerURL, Subject: "system:serviceaccount:" + e.ns + ":prometheus-reader",
					Audience: wiAudience, Keys: clusterKeys(&e.wi.keyFetches, &e.wi.mu)}}}
		})
		e.wi.clientID = clientID
		changes = append(changes, mutateLikeWebhook(objs, clientID, entratest.DefaultTenantID, e.standin.URL)...)
		for _, o := range objs {
			if o["kind"] == "Deployment" && sa != "prometheus-reader" {
				field(o, false, "spec", "template", "spec")["serviceAccountName"] = sa
			}
		}
		return changes
	}
}

// checkWorkloadIdentity proves, on the pod of deploy/workload-identity.yaml: the exchange used a
// service account token this API server issued, verified with the keys of its discovery document;
// the app container cannot read the federated token. Then its negative twins.
func (e *env) checkWorkloadIdentity(p pod, twins bool) {
	t := e.t
	reqs := e.standin.Requests()
	if len(reqs) != 1 || reqs[0].Form.Get("client_assertion") == "" {
		t.Fatalf("want one request with a client assertion, got %d", len(reqs))
	}
	claims := jwtClaims(t, reqs[0].Form.Get("client_assertion"))
	t.Logf("the federated token sent: iss %v, sub %v, aud %v", claims["iss"], claims["sub"], claims["aud"])
	if claims["iss"] != apiServerURL || claims["sub"] != "system:serviceaccount:monitoring:prometheus-reader" {
		t.Errorf("the federated token is not this API server's for the ServiceAccount")
	}
	e.wi.mu.Lock()
	fetches := e.wi.keyFetches
	e.wi.mu.Unlock()
	t.Logf("the stand-in fetched the cluster's discovery document and keys %d time(s)", fetches)
	if fetches < 1 {
		t.Errorf("the stand-in never fetched the cluster's keys")
	}
	if out, err := kubectl("-n", e.ns, "exec", p.Metadata.Name, "-c", "app", "--", "/reader", "-try", wiTokenPath); err == nil ||
		!strings.Contains(out, "no such file or directory") {
		t.Errorf("the app container must not see the federated token: %v %s", err, out)
	} else {
		t.Logf("the app container: %s", strings.TrimSpace(out))
	}

	if !twins {
		return
	}
	t.Run("negative twin: without skip-containers the app can read the federated token", func(t *testing.T) {
		track(t)
		e2 := *e
		e2.t = t
		objs := e2.load("deploy/workload-identity.yaml")
		for _, o := range objs {
			if o["kind"] == "Deployment" {
				field(o, false, "metadata")["name"] = "unfixed"
				delete(field(o, false, "spec", "template", "metadata", "annotations"), wiSkipContainers)
			}
		}
		changes := append(mutateLikeWebhook(objs, e.wi.clientID, entratest.DefaultTenantID, e.standin.URL), injectStandin(objs, e.standin.URL)...)
		t.Logf("changes:\n  %s", strings.Join(changes, "\n  "))
		if _, err := e2.applyObjects(objs); err != nil {
			t.Fatal(err)
		}
		if _, err := kubectl("-n", e.ns, "rollout", "status", "deployment/unfixed", "--timeout=180s"); err != nil {
			e.dump()
			t.Fatal(err)
		}
		var l podList
		if err := kubectlJSON(&l, "-n", e.ns, "get", "pods", "-l", "app.kubernetes.io/name=prometheus-client"); err != nil {
			t.Fatal(err)
		}
		var q string
		for _, x := range l.Items {
			if strings.HasPrefix(x.Metadata.Name, "unfixed-") && x.ready() {
				q = x.Metadata.Name
			}
		}
		out, err := kubectl("-n", e.ns, "exec", q, "-c", "app", "--", "/reader", "-try", wiTokenPath)
		t.Logf("the app container: %s", strings.TrimSpace(out))
		if err != nil || !strings.Contains(out, "read 16 bytes") {
			t.Errorf("want the app to read the federated token when the webhook mounts it into every container: %v", err)
		}
		must(t, "-n", e.ns, "delete", "deployment", "unfixed", "--wait=false")
	})

	t.Run("negative twin: a ServiceAccount with no federated credential, AADSTS700213", func(t *testing.T) {
		track(t)
		e2 := *e
		e2.t = t
		objs := e2.load("deploy/workload-identity.yaml")
		for _, o := range objs {
			field(o, false, "metadata")["name"] = "unfederated"
			if o["kind"] == "Deployment" {
				field(o, false, "spec", "template", "spec")["serviceAccountName"] = "unfederated"
				for _, m := range []object{field(o, false, "spec", "selector", "matchLabels"), field(o, false, "spec", "template", "metadata", "labels")} {
					m["app.kubernetes.io/name"] = "unfederated"
				}
			}
		}
		changes := append(mutateLikeWebhook(objs, e.wi.clientID, entratest.DefaultTenantID, e.standin.URL), injectStandin(objs, e.standin.URL)...)
		t.Logf("changes (ServiceAccount and Deployment renamed unfederated):\n  %s", strings.Join(changes, "\n  "))
		if _, err := e2.applyObjects(objs); err != nil {
			t.Fatal(err)
		}
		q := e2.onePod("app.kubernetes.io/name=unfederated", "the init container to be refused", 2*time.Minute, func(q pod) error {
			c, _ := q.container("azure-token")
			if _, _, ok := c.terminated(); !ok {
				return fmt.Errorf("not terminated")
			}
			return nil
		})
		c, _ := q.container("azure-token")
		code, msg, _ := c.terminated()
		t.Logf("init container: exit %d, message %q", code, msg)
		if code != 10 || !strings.Contains(msg, "AADSTS700213") || !strings.Contains(msg, `sub "system:serviceaccount:monitoring:unfederated"`) {
			t.Errorf("want exit 10, AADSTS700213 naming the subject")
		}
		must(t, "-n", e.ns, "delete", "deployment", "unfederated", "--wait=false")
	})
}

func jwtClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT")
	}
	b, err := base64URL(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(b, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

func base64URL(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

func execOut(path string, args ...string) (string, error) {
	out, err := exec.Command(path, args...).CombinedOutput()
	return string(out), err
}

// wiState is what the workload identity case learns as it goes.
type wiState struct {
	mu         sync.Mutex
	keyFetches int
	clientID   string
}

// Case 9's negative twin: the sidecar moved to containers but still with restartPolicy: Always,
// the mistake issue 14 found in an "older clusters" variant. A 1.34 API server accepts the object
// and drops the field without a word (older ones refuse it); the check that every manifest's
// fields survive (droppedFields, run on every shipped file) catches it.
func TestDroppedFieldIsCaught(t *testing.T) {
	t.Parallel()
	track(t)
	const file = "deploy/sidecar-deployment.yaml"
	e := newEnv(t, "dropped-field", true, 0)
	objs, out := e.apply(file, func(objs []object) []string {
		spec := field(podTemplate(objs[0]), false, "spec")
		side := spec["initContainers"].([]any)[0].(object)
		delete(side, "startupProbe")
		spec["containers"] = append(spec["containers"].([]any), side)
		delete(spec, "initContainers")
		return []string{"azure-token moved to containers, restartPolicy: Always kept (the twin's break)"}
	})
	t.Logf("kubectl apply: %s", strings.TrimSpace(out))
	var live object
	if err := kubectlJSON(&live, "-n", e.ns, "get", "deployment", name(objs[0])); err != nil {
		t.Fatal(err)
	}
	d := droppedFields(objs[0], live)
	t.Logf("dropped by the API server: %q", d)
	if !slices.Contains(d, "container azure-token: restartPolicy") {
		t.Errorf("want restartPolicy of the regular container azure-token reported as dropped")
	}
}

// Nothing is pulled from outside: containerd's only source for docker.io is the registry on this
// machine (hosts.toml's server), so an image that the mirror lacks fails to pull as NotFound: a
// registry answered, and the mirror is the only one containerd can reach (its proxy is a closed
// port). Pulling from Docker Hub would have failed to connect instead.
func TestMirrorIsTheOnlySource(t *testing.T) {
	t.Parallel()
	track(t)
	e := newEnv(t, "mirror-only", false, 0)
	pod := object{"apiVersion": "v1", "kind": "Pod", "metadata": object{"name": "not-mirrored"},
		"spec": object{"containers": []any{object{"name": "c", "image": "docker.io/library/busybox:1.36"}}}}
	if _, err := e.applyObjects([]object{pod}); err != nil {
		t.Fatal(err)
	}
	e.eventually(90*time.Second, "a pull failure naming the mirror", func() error {
		ev := e.events()
		if !strings.Contains(ev, `Failed: Failed to pull image "docker.io/library/busybox:1.36": rpc error: code = NotFound`) ||
			!strings.Contains(ev, `docker.io/library/busybox:1.36: not found`) {
			return fmt.Errorf("events:\n%s", ev)
		}
		t.Logf("events:\n%s", ev)
		return nil
	})
}

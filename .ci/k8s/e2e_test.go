//go:build e2e

package main

// The cluster's life around the cases, and what the cases share. Run by .ci/k8s-check, as root:
//
//	K8SCHECK_BIN=DIR K8SCHECK_REGISTRY=HOST:PORT K8SCHECK_DIR=DIR K8SCHECK_REPO=DIR go test -tags e2e -v .
//
// K8SCHECK_BIN holds the multi-call Kubernetes binary's names and crictl; K8SCHECK_REGISTRY is the
// registry containerd mirrors docker.io, example.com and registry.k8s.io to (it holds the product's
// image under every tag the manifests pull, the readers, and the pause image); K8SCHECK_DIR is where
// the cluster keeps everything; K8SCHECK_REPO is the tree whose deploy/ is run.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/densify-dev/azure-rest-api-token/internal/entratest"
)

var (
	k    *cluster
	repo string

	tallyMu sync.Mutex
	results []string // "PASS  name" or "FAIL  name"
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	for _, v := range []string{"K8SCHECK_BIN", "K8SCHECK_REGISTRY", "K8SCHECK_DIR", "K8SCHECK_REPO"} {
		if os.Getenv(v) == "" {
			fmt.Printf("%s not set: run .ci/k8s-check\n", v)
			return 2
		}
	}
	repo = os.Getenv("K8SCHECK_REPO")
	k = &cluster{dir: os.Getenv("K8SCHECK_DIR"), bin: os.Getenv("K8SCHECK_BIN"), registry: os.Getenv("K8SCHECK_REGISTRY"),
		nodeIP: os.Getenv("K8SCHECK_NODE_IP"), out: os.Stdout}
	// Teardown whatever happens: on return, and on SIGINT or SIGTERM (go test's own timeout kills
	// the process outright; .ci/k8s-check then runs "k8s-check-harness down").
	var once sync.Once
	down := func() int {
		code := 0
		once.Do(func() {
			if err := k.down(); err != nil {
				fmt.Printf("FAIL  teardown: %v\n", err)
				code = 1
			} else {
				fmt.Println("PASS  teardown: every process stopped by PID, mounts, bridge, cgroups, KUBE-* chains and sysctls restored")
			}
		})
		return code
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		fmt.Println("interrupted: tearing the cluster down")
		down()
		os.Exit(130)
	}()

	ctx := context.Background()
	t0 := time.Now()
	if err := k.up(ctx); err != nil {
		fmt.Printf("FAIL  cluster up: %v\n", err)
		for _, name := range components {
			tailFile(k.path("logs", name+".log"), 15)
		}
		down()
		fmt.Println("0 passed, 1 failed")
		return 1
	}
	fmt.Printf("PASS  cluster up: Kubernetes %s, node Ready, in %.1fs\n", version(), time.Since(t0).Seconds())
	rss, pss, n := k.memory()
	fmt.Printf("cluster memory, idle: RSS %d MiB, PSS %d MiB (%d processes)\n", rss, pss, n)

	// The cluster's memory while the cases run, sampled every 5 s: its peak.
	stop := make(chan struct{})
	peak := make(chan [3]int)
	go func() {
		var max [3]int
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				peak <- max
				return
			case <-tick.C:
				if rss, pss, n := k.memory(); pss > max[1] {
					max = [3]int{rss, pss, n}
				}
			}
		}
	}()
	code := m.Run()
	close(stop)
	p := <-peak
	fmt.Printf("cluster memory, peak while the cases ran (PSS, sampled every 5 s): RSS %d MiB, PSS %d MiB (%d processes)\n", p[0], p[1], p[2])
	if down() != 0 {
		code = 1
		results = append(results, "FAIL  teardown")
	} else {
		results = append(results, "PASS  teardown")
	}
	passed, failed := 0, 0
	fmt.Println("\nsummary:")
	for _, r := range results {
		fmt.Println(r)
		switch {
		case strings.HasPrefix(r, "PASS"):
			passed++
		case strings.HasPrefix(r, "FAIL"):
			failed++
		}
	}
	fmt.Printf("%d passed, %d failed\n", passed+1, failed) // +1: cluster up
	if failed > 0 && code == 0 {
		code = 1
	}
	return code
}

func version() string {
	out, _ := exec.Command(k.bin+"/kubectl", "--kubeconfig", k.kubeconfig(), "version", "-o", "json").Output()
	var v struct {
		ServerVersion struct{ GitVersion string } `json:"serverVersion"`
	}
	_ = json.Unmarshal(out, &v)
	return v.ServerVersion.GitVersion
}

func tailFile(path string, n int) {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	fmt.Printf("--- %s\n", path)
	for _, l := range lines {
		fmt.Println("    | " + l)
	}
}

// track counts t (a case, or one manifest's run) in the summary when it ends.
func track(t *testing.T) {
	t.Cleanup(func() {
		tallyMu.Lock()
		defer tallyMu.Unlock()
		verdict := "PASS"
		if t.Failed() {
			verdict = "FAIL"
		} else if t.Skipped() {
			verdict = "SKIP"
		}
		results = append(results, fmt.Sprintf("%s  %s", verdict, t.Name()))
	})
}

// kubectl runs kubectl with the admin's kubeconfig and returns its combined output.
func kubectl(args ...string) (string, error) {
	return kubectlIn("", nil, args...)
}

func kubectlIn(dir string, stdin []byte, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, k.bin+"/kubectl", append([]string{"--kubeconfig", k.kubeconfig()}, args...)...)
	cmd.Dir = dir
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := kubectl(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// env is one case's world: its namespace, its Entra stand-in, a directory for the files its
// Secrets are made from.
type env struct {
	t       *testing.T
	ns      string
	standin *entratest.Server
	dir     string
	wi      *wiState
}

// newEnv makes namespace ns (Pod Security "restricted" enforced when restricted is set) with the
// stand-in's CA in the ConfigMap the test copies mount, and a stand-in of its own listening on the
// bridge's gateway, issuing tokens valid for lifetime (0: the stand-in's default, about an hour).
func newEnv(t *testing.T, ns string, restricted bool, lifetime time.Duration) *env {
	t.Helper()
	return newEnvIn(t, ns, false, restricted, lifetime)
}

var (
	namespaceLocksMu sync.Mutex
	namespaceLocks   = map[string]*sync.Mutex{}
)

func namespaceLock(ns string) *sync.Mutex {
	namespaceLocksMu.Lock()
	defer namespaceLocksMu.Unlock()
	if namespaceLocks[ns] == nil {
		namespaceLocks[ns] = &sync.Mutex{}
	}
	return namespaceLocks[ns]
}

// newEnvIn is newEnv for a namespace that is fixed (a manifest names it) or not.
func newEnvIn(t *testing.T, ns string, fixed, restricted bool, lifetime time.Duration) *env {
	t.Helper()
	srv, err := entratest.NewServerAt(gatewayIP + ":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	if lifetime != 0 {
		srv.TokenLifetime = lifetime
	}
	// Not t.TempDir: its name, made from the test's, may hold "," or "=", which kubectl's
	// --from-file takes apart.
	dir, err := os.MkdirTemp("", "k8s-check-"+ns+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	e := &env{t: t, ns: ns, standin: srv, dir: dir, wi: &wiState{}}
	if fixed {
		// Files that name their namespace (monitoring) take turns in it: each waits for the one
		// before to be deleted.
		mu := namespaceLock(ns)
		mu.Lock()
		t.Cleanup(mu.Unlock)
	}
	must(t, "create", "namespace", ns)
	t.Cleanup(func() {
		if fixed {
			_, _ = kubectl("delete", "namespace", ns, "--wait=true", "--timeout=180s")
		} else {
			_, _ = kubectl("delete", "namespace", ns, "--wait=false")
		}
	})
	if restricted {
		must(t, "label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted", "pod-security.kubernetes.io/enforce-version=latest")
	}
	ca, err := entratest.CAPEM()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.dir, "ca.pem"), ca, 0o644); err != nil {
		t.Fatal(err)
	}
	must(t, "-n", ns, "create", "configmap", caConfigMap, "--from-file=ca.pem="+filepath.Join(e.dir, "ca.pem"))
	// The namespace's default ServiceAccount comes from the controller manager, a moment later;
	// pods cannot be created before it exists.
	e.eventually(60*time.Second, "the default ServiceAccount", func() error {
		_, err := kubectl("-n", ns, "get", "serviceaccount", "default")
		return err
	})
	return e
}

// eventually polls f every second until it returns nil, failing the test after timeout with f's
// last error.
func (e *env) eventually(timeout time.Duration, what string, f func() error) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			e.dump()
			e.t.Fatalf("%s: not after %v: %v", what, timeout, err)
		}
		time.Sleep(time.Second)
	}
}

// dump logs the namespace's pods, events and container logs, for a failure's reader.
func (e *env) dump() {
	out, _ := kubectl("-n", e.ns, "get", "all,events", "-o", "wide")
	e.t.Logf("namespace %s:\n%s", e.ns, out)
	var pods podList
	if kubectlJSON(&pods, "-n", e.ns, "get", "pods") != nil {
		return
	}
	for _, p := range pods.Items {
		for _, c := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
			logs, _ := kubectl("-n", e.ns, "logs", p.Metadata.Name, "-c", c.Name, "--tail=20")
			e.t.Logf("pod %s container %s (restarts %d):\n%s", p.Metadata.Name, c.Name, c.RestartCount, logs)
		}
	}
}

// servicePrincipal writes the service principal file of the stand-in's default app, as
// "az ad sp create-for-rbac" prints it, with password (none: null, as --create-cert prints it)
// into the env's directory under name.
func (e *env) servicePrincipal(name, password string) {
	e.t.Helper()
	sp := map[string]any{"appId": entratest.DefaultClientID, "displayName": entratest.DefaultDisplayName,
		"password": password, "tenant": entratest.DefaultTenantID}
	if password == "" {
		sp["password"] = nil
	}
	b, _ := json.MarshalIndent(sp, "", "  ")
	if err := os.WriteFile(filepath.Join(e.dir, name), b, 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// secret creates the Secret exp names the way the README says, from the env's directory:
// "kubectl create secret generic NAME --from-file=KEY" (the certificate's PEM added with
// --from-file=cert.pem=...). password "" means the stand-in's secret.
func (e *env) secret(exp expectation, password string) {
	e.t.Helper()
	if password == "" {
		password = entratest.DefaultSecret
	}
	args := []string{"-n", e.ns, "create", "secret", "generic", exp.secret, "--from-file=" + exp.secretKey}
	if exp.certificate {
		e.servicePrincipal(exp.secretKey, "")
		key, err := entratest.RSAKey(2048)
		if err != nil {
			e.t.Fatal(err)
		}
		cert, err := entratest.NewCertificate(key, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
		if err != nil {
			e.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(e.dir, "tmpXXXX.pem"), certAndKeyPEM(e.t, cert, key), 0o600); err != nil {
			e.t.Fatal(err)
		}
		e.standin.Change(func() {
			app := e.standin.Apps[entratest.DefaultClientID]
			app.Certificates = append(app.Certificates, cert)
			e.standin.Apps[entratest.DefaultClientID] = app
		})
		args = append(args, "--from-file=cert.pem="+filepath.Join(e.dir, "tmpXXXX.pem"))
	} else {
		e.servicePrincipal(exp.secretKey, password)
	}
	if _, err := kubectlIn(e.dir, nil, args...); err != nil {
		e.t.Fatal(err)
	}
}

// apply makes the test copy of the shipped manifest path (see injectStandin; change, if not nil,
// makes a case's own further change first), logs the changes, applies it in the env's namespace,
// and returns the objects sent and kubectl's output (warnings included).
func (e *env) apply(path string, change func([]object) []string) ([]object, string) {
	e.t.Helper()
	objs := e.load(path)
	var changes []string
	if change != nil {
		changes = change(objs)
	}
	changes = append(changes, injectStandin(objs, e.standin.URL)...)
	e.t.Logf("test copy of %s: changes:\n  %s", path, strings.Join(changes, "\n  "))
	out, err := e.applyObjects(objs)
	if err != nil {
		e.t.Fatal(err)
	}
	return objs, out
}

func (e *env) load(path string) []object {
	e.t.Helper()
	out, err := exec.Command(k.bin+"/kubectl", "--kubeconfig", k.kubeconfig(), "-n", e.ns, "create", "--dry-run=client", "-o", "json", "-f", filepath.Join(repo, path)).Output()
	if err != nil {
		e.t.Fatalf("reading %s: %v", path, err)
	}
	objs, err := parseObjects(out)
	if err != nil {
		e.t.Fatalf("reading %s: %v", path, err)
	}
	return objs
}

func (e *env) applyObjects(objs []object) (string, error) {
	b, err := json.Marshal(object{"apiVersion": "v1", "kind": "List", "items": objs})
	if err != nil {
		return "", err
	}
	return kubectlIn("", b, "-n", e.ns, "apply", "-f", "-")
}

// Pod status, as much of it as the cases read.
type podList struct {
	Items []pod `json:"items"`
}

type pod struct {
	Metadata struct {
		Name              string            `json:"name"`
		UID               string            `json:"uid"`
		Labels            map[string]string `json:"labels"`
		DeletionTimestamp *time.Time        `json:"deletionTimestamp"`
	} `json:"metadata"`
	Status struct {
		Phase                 string            `json:"phase"`
		PodIP                 string            `json:"podIP"`
		Conditions            []condition       `json:"conditions"`
		InitContainerStatuses []containerStatus `json:"initContainerStatuses"`
		ContainerStatuses     []containerStatus `json:"containerStatuses"`
	} `json:"status"`
}

type condition struct {
	Type    string `json:"type"`
	Status  string `json:"status"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

type containerState struct {
	Running *struct {
		StartedAt time.Time `json:"startedAt"`
	} `json:"running"`
	Terminated *struct {
		ExitCode   int       `json:"exitCode"`
		Reason     string    `json:"reason"`
		Message    string    `json:"message"`
		StartedAt  time.Time `json:"startedAt"`
		FinishedAt time.Time `json:"finishedAt"`
	} `json:"terminated"`
	Waiting *struct {
		Reason  string `json:"reason"`
		Message string `json:"message"`
	} `json:"waiting"`
}

type containerStatus struct {
	Name         string         `json:"name"`
	RestartCount int            `json:"restartCount"`
	Started      *bool          `json:"started"`
	Ready        bool           `json:"ready"`
	State        containerState `json:"state"`
	LastState    containerState `json:"lastState"`
}

func (p pod) container(name string) (containerStatus, bool) {
	for _, c := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
		if c.Name == name {
			return c, true
		}
	}
	return containerStatus{}, false
}

func (p pod) ready() bool {
	return slices.ContainsFunc(p.Status.Conditions, func(c condition) bool { return c.Type == "Ready" && c.Status == "True" })
}

// terminated returns the container's current or last termination, if any.
func (c containerStatus) terminated() (exit int, message string, ok bool) {
	for _, s := range []containerState{c.State, c.LastState} {
		if s.Terminated != nil {
			return s.Terminated.ExitCode, s.Terminated.Message, true
		}
	}
	return 0, "", false
}

func kubectlJSON(v any, args ...string) error {
	out, err := exec.Command(k.bin+"/kubectl", append([]string{"--kubeconfig", k.kubeconfig(), "-o", "json"}, args...)...).Output()
	if err != nil {
		return fmt.Errorf("kubectl %s: %w", strings.Join(args, " "), err)
	}
	return json.Unmarshal(out, v)
}

// pods returns the namespace's pods that are not being deleted, with selector (none: all).
func (e *env) pods(selector string) []pod {
	e.t.Helper()
	args := []string{"-n", e.ns, "get", "pods"}
	if selector != "" {
		args = append(args, "-l", selector)
	}
	var l podList
	if err := kubectlJSON(&l, args...); err != nil {
		e.t.Fatal(err)
	}
	var live []pod
	for _, p := range l.Items {
		if p.Metadata.DeletionTimestamp == nil {
			live = append(live, p)
		}
	}
	return live
}

// onePod waits for exactly one live pod with selector for which ok holds, and returns it.
func (e *env) onePod(selector, what string, timeout time.Duration, ok func(pod) error) pod {
	e.t.Helper()
	var found pod
	e.eventually(timeout, what, func() error {
		ps := e.pods(selector)
		if len(ps) != 1 {
			return fmt.Errorf("%d pods", len(ps))
		}
		if err := ok(ps[0]); err != nil {
			return err
		}
		found = ps[0]
		return nil
	})
	return found
}

func (e *env) logs(podName, container string, previous bool) string {
	e.t.Helper()
	args := []string{"-n", e.ns, "logs", podName, "-c", container}
	if previous {
		args = append(args, "--previous")
	}
	out, err := kubectl(args...)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// waitJob waits until job NAME is Complete (nil) or Failed (an error with the reason).
func (e *env) waitJob(name string, timeout time.Duration) error {
	e.t.Helper()
	var final error
	e.eventually(timeout, "job "+name+" to finish", func() error {
		var j struct {
			Status struct {
				Conditions []condition `json:"conditions"`
			} `json:"status"`
		}
		if err := kubectlJSON(&j, "-n", e.ns, "get", "job", name); err != nil {
			return err
		}
		for _, c := range j.Status.Conditions {
			if c.Status != "True" {
				continue
			}
			switch c.Type {
			case "Complete":
				final = nil
				return nil
			case "Failed":
				final = fmt.Errorf("job %s failed: %s: %s", name, c.Reason, c.Message)
				return nil
			}
		}
		return errors.New("still running")
	})
	return final
}

// events returns the namespace's events as "REASON: MESSAGE" lines.
func (e *env) events() string {
	e.t.Helper()
	out, err := kubectl("-n", e.ns, "get", "events", "-o", "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}")
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// successes returns the token requests the stand-in answered with a token, in order: those that
// got the default answer (the stand-in records each request; refusals are told apart by what
// authenticate would say, so the case counts requests after its refusals ended).
func requestsSince(srv *entratest.Server, since time.Time) []entratest.Request {
	var rs []entratest.Request
	for _, r := range srv.Requests() {
		if !r.Time.Before(since) {
			rs = append(rs, r)
		}
	}
	return rs
}

// readerLine matches a good read by the reader: the token file as the pod's main container sees it.
func readerLine(uid int) *regexp.Regexp {
	return regexp.MustCompile(fmt.Sprintf(`(?m)^reader: uid=%d gid=\d+ read \d+: mode -rw-r--r-- owner 65532:65532, \d+ bytes, aud=%s, exp=`,
		uid, regexp.QuoteMeta(entratest.PrometheusResource)))
}

// hardenedLine matches the reader's first line when its securityContext was applied by the kernel:
// no capabilities, no new privileges, a seccomp filter, a read-only root.
func hardenedLine(uid int) *regexp.Regexp {
	return regexp.MustCompile(fmt.Sprintf(`(?m)^reader: uid=%d gid=\d+ CapEff=0000000000000000 NoNewPrivs=1 Seccomp=2 rootfs=read-only$`, uid))
}

// clusterKeys returns a function that fetches the cluster's service account signing keys as Entra
// does at each exchange: the issuer's OpenID discovery document, anonymously, then its jwks_uri.
// It counts its fetches in *n.
func clusterKeys(n *int, mu *sync.Mutex) func() (jose.JSONWebKeySet, error) {
	return func() (jose.JSONWebKeySet, error) {
		pool, err := k.caPool()
		if err != nil {
			return jose.JSONWebKeySet{}, err
		}
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: pool}}}
		get := func(url string, v any) error {
			resp, err := client.Get(url)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("GET %s: %s", url, resp.Status)
			}
			return json.Unmarshal(b, v)
		}
		var discovery struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		if err := get(apiServerURL+"/.well-known/openid-configuration", &discovery); err != nil {
			return jose.JSONWebKeySet{}, err
		}
		if discovery.Issuer != apiServerURL {
			return jose.JSONWebKeySet{}, fmt.Errorf("discovery names issuer %q", discovery.Issuer)
		}
		var set jose.JSONWebKeySet
		if err := get(discovery.JWKSURI, &set); err != nil {
			return jose.JSONWebKeySet{}, err
		}
		mu.Lock()
		*n++
		mu.Unlock()
		return set, nil
	}
}

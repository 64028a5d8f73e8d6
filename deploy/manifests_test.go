package deploy

import (
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"

	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// released is an image reference the release publishes: docker.io/densify/azure-rest-api-token (or
// its short form densify/azure-rest-api-token, as older manifests spell it) with a tag X.Y.Z (no "v",
// no "latest": see .goreleaser.yaml).
var released = regexp.MustCompile(`^(docker\.io/)?densify/azure-rest-api-token:[0-9]+\.[0-9]+\.[0-9]+$`)

// TestManifests checks every shipped manifest: strict decoding, Pod Security "restricted" for every pod
// template, the hardened securityContext on every container, and the image: a released tag with the
// digest pin spelled out beside it.
func TestManifests(t *testing.T) {
	files, err := Manifests(".")
	if err != nil {
		t.Fatal(err)
	}
	// The examples the README points to; sidecar-deployment.yaml joins them with refresh mode.
	for _, want := range []string{"densify-cronjob.yaml", "init-container-app.yaml", "workload-identity.yaml", "certificate.yaml", "managed-identity.yaml"} {
		if !slices.Contains(files, want) {
			t.Errorf("%s is missing from %v", want, files)
		}
	}
	var docs, pods int
	for _, file := range files {
		objs, err := DecodeFile(file)
		if err != nil {
			t.Errorf("strict decoding: %v", err)
			continue
		}
		docs += len(objs)
		data, _ := os.ReadFile(file)
		for i, obj := range objs {
			meta, spec, ok := PodTemplate(obj)
			if !ok {
				continue
			}
			pods++
			if err := Restricted(meta, spec); err != nil {
				t.Errorf("%s, document %d: %v", file, i+1, err)
			}
			if err := Hardened(spec); err != nil {
				t.Errorf("%s, document %d: %v", file, i+1, err)
			}
			for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
				if !strings.Contains(c.Image, "azure-rest-api-token") {
					continue
				}
				if !released.MatchString(c.Image) {
					t.Errorf("%s: container %q: image %q is not docker.io/densify/azure-rest-api-token:X.Y.Z", file, c.Name, c.Image)
				}
				if !strings.Contains(string(data), c.Image+"@sha256:") {
					t.Errorf("%s: container %q: no comment showing how to pin %s by digest", file, c.Name, c.Image)
				}
			}
		}
	}
	if pods == 0 {
		t.Fatal("no pod templates checked")
	}
	t.Logf("%d files, %d documents decoded strictly, %d pod templates pass restricted:latest and are hardened", len(files), docs, pods)
}

// TestRejects proves that the checks above can fail, and with the reason.
func TestRejects(t *testing.T) {
	good, err := os.ReadFile("init-container-app.yaml")
	if err != nil {
		t.Fatal(err)
	}
	edit := func(old, new string) string {
		if !strings.Contains(string(good), old) {
			t.Fatalf("init-container-app.yaml has no %q", old)
		}
		return strings.Replace(string(good), old, new, 1)
	}
	for _, tc := range []struct {
		name, yaml, want string
		check            func(string) error
	}{
		{"unknown field", edit("          env:\n", "          enviroment: []\n          env:\n"), `unknown field "spec.template.spec.initContainers[0].enviroment"`, decodeOnly},
		{"duplicate field", edit("  replicas: 1\n", "  replicas: 1\n  replicas: 2\n"), `"replicas" already set in map`, decodeOnly},
		{"no drop ALL", edit("              drop: [ALL]\n          resources:", "              drop: [NET_RAW]\n          resources:"), "unrestricted capabilities (container \"azure-token\" must set securityContext.capabilities.drop=[\"ALL\"])", restricted},
		{"privilege escalation", edit("            runAsGroup: 10001\n            readOnlyRootFilesystem: true\n            allowPrivilegeEscalation: false\n", "            runAsGroup: 10001\n            readOnlyRootFilesystem: true\n            allowPrivilegeEscalation: true\n"), "allowPrivilegeEscalation != false (container \"app\"", restricted},
		{"no seccomp profile", edit("        seccompProfile:\n          type: RuntimeDefault\n", ""), "seccompProfile (pod or containers \"azure-token\", \"app\" must set securityContext.seccompProfile.type", restricted},
		{"writable root", edit("            runAsGroup: 10001\n            readOnlyRootFilesystem: true\n", "            runAsGroup: 10001\n"), `container "app": readOnlyRootFilesystem is not true`, hardened},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.check(tc.yaml)
			if err == nil {
				t.Fatalf("accepted; want an error with %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\ndoes not contain %q", err, tc.want)
			}
		})
	}
}

func decodeOnly(y string) error { _, err := Decode([]byte(y)); return err }

func restricted(y string) error {
	objs, err := Decode([]byte(y))
	if err != nil {
		return err
	}
	meta, spec, _ := PodTemplate(objs[0])
	return Restricted(meta, spec)
}

func hardened(y string) error {
	objs, err := Decode([]byte(y))
	if err != nil {
		return err
	}
	_, spec, _ := PodTemplate(objs[0])
	return Hardened(spec)
}

// TestUpstreamDensifyCronJob: the original CronJob that existing clusters run decodes strictly (it is
// what .ci/k8s-check runs unchanged), and is refused by "restricted", which is why the shipped one is hardened.
func TestUpstreamDensifyCronJob(t *testing.T) {
	objs, err := DecodeFile("testdata/densify-upstream-cronjob.yaml")
	if err != nil {
		t.Fatal(err)
	}
	meta, spec, ok := PodTemplate(objs[0])
	if !ok {
		t.Fatal("no pod template")
	}
	err = Restricted(meta, spec)
	if err == nil || !strings.Contains(err.Error(), "runAsNonRoot != true") {
		t.Errorf("restricted: got %v, want a runAsNonRoot refusal", err)
	}
}

// TestReadme: every YAML block in README.md is a verbatim run of lines of a shipped manifest, so the
// README cannot drift from what is shipped and checked: of the file named by a marker
// <!-- deploy/NAME.yaml --> on the line before the fence, or else of any of them.
func TestReadme(t *testing.T) {
	f, err := os.Open(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	marker := regexp.MustCompile(`^\s*<!-- (deploy/[a-z0-9-]+\.yaml) -->$`)
	var prev, source, indent string
	var block []string
	in, blocks := false, 0
	line := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line++
		text := sc.Text()
		trimmed := strings.TrimLeft(text, " ")
		switch {
		case !in && strings.HasPrefix(trimmed, "```yaml"):
			in, block, indent = true, nil, text[:len(text)-len(trimmed)]
			source = ""
			if m := marker.FindStringSubmatch(prev); m != nil {
				source = m[1]
			}
		case in && trimmed == "```":
			in = false
			blocks++
			checkExcerpt(t, line, source, block)
		case in:
			block = append(block, strings.TrimPrefix(text, indent))
		}
		prev = text
	}
	if blocks == 0 {
		t.Fatal("no YAML blocks in README.md")
	}
	t.Logf("%d YAML blocks in README.md match their manifests", blocks)
}

// checkExcerpt reports an error unless block is a run of lines of source (deploy/NAME.yaml), or, with
// source "", of any shipped manifest.
func checkExcerpt(t *testing.T, line int, source string, block []string) {
	t.Helper()
	files := []string{strings.TrimPrefix(source, "deploy/")}
	if source == "" {
		files, _ = Manifests(".")
		source = "any deploy/*.yaml"
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Errorf("README.md:%d: %v", line, err)
			return
		}
		lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
		for i := 0; i+len(block) <= len(lines); i++ {
			if slices.Equal(lines[i:i+len(block)], block) {
				return
			}
		}
	}
	t.Errorf("README.md: the YAML block ending at line %d is not a verbatim excerpt of %s", line, source)
}

// TestOlderClusters: the example for clusters without native sidecars sets restartPolicy on no
// container (an API server without native sidecars refuses the field, or drops it and never starts the
// app), runs the refreshing container as a regular container with the probes, and writes the first
// token in a one-shot init container; the native example keeps its sidecar an init container with
// restartPolicy Always (issue 14, item 2).
func TestOlderClusters(t *testing.T) {
	native, older := sidecarSpec(t, "sidecar-deployment.yaml"), sidecarSpec(t, "sidecar-deployment-older-clusters.yaml")
	if len(native.InitContainers) != 1 || native.InitContainers[0].RestartPolicy == nil || *native.InitContainers[0].RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Errorf("sidecar-deployment.yaml: want one init container with restartPolicy Always")
	}
	for _, c := range append(slices.Clone(older.InitContainers), older.Containers...) {
		if c.RestartPolicy != nil {
			t.Errorf("sidecar-deployment-older-clusters.yaml: container %q sets restartPolicy", c.Name)
		}
	}
	env := func(c corev1.Container, name string) string {
		for _, e := range c.Env {
			if e.Name == name {
				return e.Value
			}
		}
		return ""
	}
	if len(older.InitContainers) != 1 || env(older.InitContainers[0], "BEARER_TOKEN_REFRESH") != "" || env(older.InitContainers[0], "BEARER_TOKEN_FILE_REPLACE") != "true" {
		t.Errorf("sidecar-deployment-older-clusters.yaml: want one one-shot init container with BEARER_TOKEN_FILE_REPLACE=true")
	}
	var refresher *corev1.Container
	for i, c := range older.Containers {
		if env(c, "BEARER_TOKEN_REFRESH") == "true" {
			refresher = &older.Containers[i]
		}
	}
	if refresher == nil {
		t.Fatal("sidecar-deployment-older-clusters.yaml: no regular container with BEARER_TOKEN_REFRESH=true")
	}
	if refresher.StartupProbe == nil || refresher.LivenessProbe == nil || refresher.ReadinessProbe == nil {
		t.Errorf("sidecar-deployment-older-clusters.yaml: container %q: want startup, liveness and readiness probes", refresher.Name)
	}
	if env(older.InitContainers[0], "BEARER_TOKEN_FILE") != env(*refresher, "BEARER_TOKEN_FILE") {
		t.Errorf("sidecar-deployment-older-clusters.yaml: the init container and %q write different files", refresher.Name)
	}
}

func sidecarSpec(t *testing.T, file string) *corev1.PodSpec {
	t.Helper()
	objs, err := DecodeFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range objs {
		if _, spec, ok := PodTemplate(obj); ok {
			return spec
		}
	}
	t.Fatalf("%s: no pod template", file)
	return nil
}

// TestExampleConventions: every Deployment carries the label app.kubernetes.io/name on itself, its
// selector and its pod template, and every container that is not the program (the app, the
// forwarder) has a tagged image and a runAsUser (issue 14, item 18).
func TestExampleConventions(t *testing.T) {
	files, err := Manifests(".")
	if err != nil {
		t.Fatal(err)
	}
	tagged := regexp.MustCompile(`^[^@]+/[^/:@]+:[A-Za-z0-9_][A-Za-z0-9_.-]*$`)
	for _, file := range files {
		objs, err := DecodeFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, obj := range objs {
			if d, ok := obj.(*appsv1.Deployment); ok {
				name := d.Labels["app.kubernetes.io/name"]
				if name == "" || d.Spec.Selector.MatchLabels["app.kubernetes.io/name"] != name || d.Spec.Template.Labels["app.kubernetes.io/name"] != name {
					t.Errorf("%s: Deployment %q: want app.kubernetes.io/name on the Deployment, its selector and its pod template, alike", file, d.Name)
				}
			}
			_, spec, ok := PodTemplate(obj)
			if !ok {
				continue
			}
			for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
				if strings.Contains(c.Image, "azure-rest-api-token") {
					continue
				}
				if !tagged.MatchString(c.Image) || strings.HasSuffix(c.Image, ":latest") {
					t.Errorf("%s: container %q: image %q has no version tag", file, c.Name, c.Image)
				}
				if c.SecurityContext == nil || c.SecurityContext.RunAsUser == nil {
					t.Errorf("%s: container %q: no runAsUser", file, c.Name)
				}
			}
		}
	}
}

// TestNamespaceLabelWarning: wherever a policy file tells the user to label a namespace for
// policy-controller, the next lines say that every image no policy covers is then refused, in the
// controller's words ("uncovered by policy", the refusal .ci/admission-check asserts for an image no
// policy covers) (issue 14, item 8).
func TestNamespaceLabelWarning(t *testing.T) {
	files, err := filepath.Glob("admission/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no admission policies: %v", err)
	}
	n := 0
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(data), "\n")
		for i, line := range lines {
			if !strings.Contains(line, "policy.sigstore.dev/include=true") {
				continue
			}
			n++
			if !strings.Contains(strings.Join(lines[i:min(i+8, len(lines))], "\n"), `"uncovered by policy"`) {
				t.Errorf("%s:%d: the namespace label, without saying that every image no policy covers is then refused (\"uncovered by policy\")", file, i+1)
			}
		}
	}
	if n == 0 {
		t.Fatal("no namespace label command found")
	}
}

// TestMonitoring: the PodMonitor and the PrometheusRule decode strictly into the Prometheus Operator's
// types, the PodMonitor scrapes the port the example's sidecar names, and a misspelt field is refused.
func TestMonitoring(t *testing.T) {
	objs, err := DecodeFile("podmonitor.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pm, ok := objs[0].(*monitoringv1.PodMonitor)
	if !ok || len(pm.Spec.PodMetricsEndpoints) != 1 {
		t.Fatalf("podmonitor.yaml: %T, want one PodMonitor with one endpoint", objs[0])
	}
	objs, err = DecodeFile("sidecar-resources-metrics.yaml")
	if err != nil {
		t.Fatal(err)
	}
	meta, spec, _ := PodTemplate(objs[0])
	var ports []string
	for _, c := range spec.InitContainers {
		for _, p := range c.Ports {
			ports = append(ports, p.Name)
		}
	}
	if ep := pm.Spec.PodMetricsEndpoints[0]; ep.Port == nil || !slices.Contains(ports, *ep.Port) {
		t.Errorf("the PodMonitor scrapes port %v, the sidecar names %v", ep.Port, ports)
	}
	for k, v := range pm.Spec.Selector.MatchLabels {
		if meta.Labels[k] != v {
			t.Errorf("the PodMonitor selects %s=%s, the pods have %v", k, v, meta.Labels)
		}
	}
	objs, err = DecodeFile("prometheusrule.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rule, ok := objs[0].(*monitoringv1.PrometheusRule)
	if !ok {
		t.Fatalf("prometheusrule.yaml: %T", objs[0])
	}
	var alerts []string
	for _, g := range rule.Spec.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
		}
	}
	if want := []string{"AzureTokenExpiresSoon", "AzureTokenRenewalOverdue"}; !slices.Equal(alerts, want) {
		t.Errorf("alerts %v, want %v", alerts, want)
	}
	data, _ := os.ReadFile("prometheusrule.yaml")
	_, err = Decode([]byte(strings.Replace(string(data), "          for: 5m\n", "          fore: 5m\n", 1)))
	if err == nil || !strings.Contains(err.Error(), `unknown field "spec.groups[0].rules[1].fore"`) {
		t.Errorf("misspelt field: %v", err)
	}
}

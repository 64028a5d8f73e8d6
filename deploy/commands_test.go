package deploy

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// A command is one shell command found in a document (README.md, or a manifest's comments): its
// fields, continuation lines ("\" at the end) joined and comment markers dropped, and where it is.
type command struct {
	where  string
	fields []string
}

// commands returns every command in text that starts with prefix ("kubectl create"), in fenced
// blocks, in `inline code` or in "#" comments. A command ends at the end of its line, unless the
// line ends in "\", or at a closing backtick.
func commands(where, text, prefix string) []command {
	lines := strings.Split(text, "\n")
	var out []command
	for i := 0; i < len(lines); i++ {
		at := strings.Index(lines[i], prefix)
		if at < 0 {
			continue
		}
		n := i + 1
		cmd := lines[i][at:]
		for strings.HasSuffix(strings.TrimSpace(cmd), "\\") && i+1 < len(lines) {
			i++
			cmd = strings.TrimSuffix(strings.TrimSpace(cmd), "\\") + " " + strings.TrimLeft(lines[i], "# \t")
		}
		if j := strings.Index(cmd, "`"); j >= 0 {
			cmd = cmd[:j]
		}
		out = append(out, command{where: fmt.Sprintf("%s:%d", where, n), fields: strings.Fields(cmd)})
	}
	return out
}

// A created object is what "kubectl create secret generic NAME --from-file=..." or "kubectl create
// configmap NAME --from-file=..." makes: its kind, name and keys.
type created struct {
	where, kind, name string
	keys              []string
}

// creates returns the Secrets and ConfigMaps that the kubectl create commands in text make. A key is
// the KEY of --from-file=KEY=PATH, else the base name of PATH; --from-literal=KEY=VALUE too.
func creates(where, text string) []created {
	var out []created
	for _, c := range commands(where, text, "kubectl create ") {
		f := c.fields
		var obj created
		switch {
		case len(f) >= 5 && f[2] == "secret" && f[3] == "generic":
			obj = created{where: c.where, kind: "Secret", name: f[4]}
			f = f[5:]
		case len(f) >= 4 && f[2] == "configmap":
			obj = created{where: c.where, kind: "ConfigMap", name: f[3]}
			f = f[4:]
		default:
			continue
		}
		for _, a := range f {
			if v, ok := strings.CutPrefix(a, "--from-file="); ok {
				key, _, hasKey := strings.Cut(v, "=")
				if !hasKey {
					key = path.Base(v)
				}
				obj.keys = append(obj.keys, key)
			} else if v, ok := strings.CutPrefix(a, "--from-literal="); ok {
				key, _, _ := strings.Cut(v, "=")
				obj.keys = append(obj.keys, key)
			}
		}
		out = append(out, obj)
	}
	return out
}

// A mounted object is a Secret or ConfigMap that a shipped manifest's pod mounts, with the keys its
// containers read: those that a container's environment names by path under the volume's mount
// (ENTRA_SERVICE_PRINCIPAL=/etc/azure-sp/serviceprincipal.json reads key serviceprincipal.json), and
// those the volume lists in items.
type mounted struct {
	file, kind, name string
	keys             []string
}

// mounts returns the Secrets and ConfigMaps that the pods of objs, decoded from file, mount.
func mounts(file string, objs []runtime.Object) []mounted {
	var out []mounted
	for _, obj := range objs {
		_, spec, ok := PodTemplate(obj)
		if !ok {
			continue
		}
		for _, v := range spec.Volumes {
			var m mounted
			var items []corev1.KeyToPath
			switch {
			case v.Secret != nil:
				m, items = mounted{file: file, kind: "Secret", name: v.Secret.SecretName}, v.Secret.Items
			case v.ConfigMap != nil:
				m, items = mounted{file: file, kind: "ConfigMap", name: v.ConfigMap.Name}, v.ConfigMap.Items
			default:
				continue
			}
			for _, it := range items {
				m.keys = append(m.keys, it.Key)
			}
			for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
				for _, vm := range c.VolumeMounts {
					if vm.Name != v.Name {
						continue
					}
					for _, e := range c.Env {
						if rel, ok := strings.CutPrefix(e.Value, strings.TrimSuffix(vm.MountPath, "/")+"/"); ok && len(items) == 0 {
							m.keys = append(m.keys, rel)
						}
					}
				}
			}
			slices.Sort(m.keys)
			m.keys = slices.Compact(m.keys)
			out = append(out, m)
		}
	}
	return out
}

// shipped returns every shipped manifest's name, text and decoded objects.
func shipped(t *testing.T) (names []string, text map[string]string, objs map[string][]runtime.Object) {
	t.Helper()
	files, err := Manifests(".")
	if err != nil {
		t.Fatal(err)
	}
	text, objs = map[string]string{}, map[string][]runtime.Object{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		o, err := DecodeFile(f)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, f)
		text[f], objs[f] = string(data), o
	}
	return names, text, objs
}

func readme(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestCreatedAsMounted: the Secrets and ConfigMaps that the README's kubectl create commands make are
// those the shipped manifests mount, with the keys they read, and the other way round; and each
// manifest's own comment, when it gives the command, agrees with the manifest (issue 14, item 1: the
// README created prometheus-reader-sp where certificate.yaml mounts prometheus-reader-cert).
func TestCreatedAsMounted(t *testing.T) {
	names, text, objs := shipped(t)
	var all []mounted
	for _, f := range names {
		all = append(all, mounts(f, objs[f])...)
	}
	for _, p := range checkCreatedAsMounted(creates("README.md", readme(t)), all) {
		t.Error(p)
	}
	for _, f := range names {
		own := creates(f, text[f])
		if len(own) == 0 {
			continue
		}
		for _, p := range checkCreatedAsMounted(own, mounts(f, objs[f])) {
			t.Error(p)
		}
	}
}

// checkCreatedAsMounted returns a problem for each created object no manifest mounts, and for each
// mounted one that no command creates with every key the manifest reads.
func checkCreatedAsMounted(made []created, used []mounted) []string {
	var problems []string
	for _, c := range made {
		if !slices.ContainsFunc(used, func(m mounted) bool { return m.kind == c.kind && m.name == c.name }) {
			problems = append(problems, fmt.Sprintf("%s: creates %s %q, which no shipped manifest mounts", c.where, c.kind, c.name))
		}
	}
	for _, m := range used {
		var found []string
		ok := slices.ContainsFunc(made, func(c created) bool {
			if c.kind != m.kind || c.name != m.name {
				return false
			}
			found = append(found, c.where+" "+fmt.Sprint(c.keys))
			for _, k := range m.keys {
				if !slices.Contains(c.keys, k) {
					return false
				}
			}
			return true
		})
		if !ok {
			problems = append(problems, fmt.Sprintf("%s mounts %s %q and reads keys %v, which no kubectl create command makes (found: %v)", m.file, m.kind, m.name, m.keys, found))
		}
	}
	sort.Strings(problems)
	return problems
}

// TestCreatedAsMountedRejects proves the check fails on the mistake of issue 14, item 1, and on a
// missing key.
func TestCreatedAsMountedRejects(t *testing.T) {
	used := []mounted{{file: "certificate.yaml", kind: "Secret", name: "prometheus-reader-cert", keys: []string{"cert.pem", "serviceprincipal.json"}}}
	readme := "```sh\nkubectl create secret generic prometheus-reader-sp \\\n  --from-file=serviceprincipal.json --from-file=cert.pem=/home/you/tmpXXXX.pem\n```\n"
	got := checkCreatedAsMounted(creates("README.md", readme), used)
	want := []string{
		`README.md:2: creates Secret "prometheus-reader-sp", which no shipped manifest mounts`,
		`certificate.yaml mounts Secret "prometheus-reader-cert" and reads keys [cert.pem serviceprincipal.json], which no kubectl create command makes (found: [])`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	noKey := "`kubectl create secret generic prometheus-reader-cert --from-file=serviceprincipal.json`"
	got = checkCreatedAsMounted(creates("README.md", noKey), used)
	if len(got) != 1 || !strings.Contains(got[0], "reads keys [cert.pem serviceprincipal.json], which no kubectl create command makes") {
		t.Errorf("a missing key: got %q", got)
	}
}

// TestReadmeNames: the other names the README's commands give exist in the shipped manifests: the
// CronJob of "kubectl create job --from=cronjob/NAME", the container of "kubectl logs ... -c NAME"
// and of a jsonpath on a container's name, the ServiceAccount of a federated credential's subject
// system:serviceaccount:NAMESPACE:NAME, and the namespace of "kubectl create namespace NAME".
func TestReadmeNames(t *testing.T) {
	names, _, objs := shipped(t)
	have := map[string]bool{}
	for _, f := range names {
		for _, obj := range objs[f] {
			switch o := obj.(type) {
			case *corev1.ServiceAccount:
				have["serviceaccount/"+o.Namespace+"/"+o.Name] = true
				have["namespace/"+o.Namespace] = true
			}
			kind := obj.GetObjectKind().GroupVersionKind().Kind
			if m, ok := obj.(interface{ GetName() string }); ok {
				have[strings.ToLower(kind)+"/"+m.GetName()] = true
			}
			if m, ok := obj.(interface{ GetNamespace() string }); ok && m.GetNamespace() != "" {
				have["namespace/"+m.GetNamespace()] = true
			}
			if _, spec, ok := PodTemplate(obj); ok {
				for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
					have["container/"+c.Name] = true
				}
			}
		}
	}
	text := readme(t)
	var wants []string
	for _, c := range commands("README.md", text, "kubectl ") {
		for i, f := range c.fields {
			switch {
			case strings.HasPrefix(f, "--from=cronjob/"):
				wants = append(wants, c.where+" cronjob/"+strings.TrimPrefix(f, "--from=cronjob/"))
			case f == "-c" && i+1 < len(c.fields) && c.fields[1] == "logs":
				wants = append(wants, c.where+" container/"+c.fields[i+1])
			case len(c.fields) > 3 && c.fields[1] == "create" && c.fields[2] == "namespace" && i == 3:
				wants = append(wants, c.where+" namespace/"+f)
			}
		}
	}
	for _, m := range regexp.MustCompile(`system:serviceaccount:([a-z0-9-]+):([a-z0-9-]+)`).FindAllStringSubmatch(text, -1) {
		wants = append(wants, "README.md serviceaccount/"+m[1]+"/"+m[2])
	}
	for _, m := range regexp.MustCompile(`ContainerStatuses\[\?\(@\.name=="([a-z0-9-]+)"\)\]`).FindAllStringSubmatch(text, -1) {
		wants = append(wants, "README.md container/"+m[1])
	}
	if len(wants) == 0 {
		t.Fatal("no names found in the README's commands")
	}
	for _, w := range wants {
		where, name, _ := strings.Cut(w, " ")
		if !have[name] {
			t.Errorf("%s: %s is in no shipped manifest", where, name)
		}
	}
	t.Logf("%d names in the README's commands found in the manifests", len(wants))
}

// TestExamplesTable: the README's table of Kubernetes examples lists every shipped manifest and the
// admission policies, and names no file that does not exist (issue 14, item 5).
func TestExamplesTable(t *testing.T) {
	text := readme(t)
	start := strings.Index(text, "\n## Kubernetes examples\n")
	if start < 0 {
		t.Fatal("README.md has no section Kubernetes examples")
	}
	section := text[start+1:]
	if end := strings.Index(section[1:], "\n## "); end >= 0 {
		section = section[:end+1]
	}
	listed := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\| \[[^\]]+\]\(deploy/([^)]+)\) \|`).FindAllStringSubmatch(section, -1) {
		listed[m[1]] = true
		if _, err := os.Stat(m[1]); err != nil {
			t.Errorf("README.md's examples table lists deploy/%s: %v", m[1], err)
		}
	}
	files, err := Manifests(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range append(files, "admission/") {
		if !listed[f] {
			t.Errorf("README.md's examples table does not list deploy/%s", f)
		}
	}
}

package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const deployment = `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"template":{
 "metadata":{"labels":{"azure.workload.identity/use":"true"},"annotations":{"azure.workload.identity/skip-containers":"app"}},
 "spec":{"initContainers":[{"name":"azure-token","image":"docker.io/densify/azure-rest-api-token:1.1.0","env":[{"name":"AZURE_RESOURCE","value":"r"}]}],
  "containers":[{"name":"app","image":"example.com/my-app:1.0.0"}],"volumes":[{"name":"token","emptyDir":{}}]}}}}`

func mustParse(t *testing.T, s string) []object {
	t.Helper()
	objs, err := parseObjects([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func TestInjectStandinTouchesOnlyTheProductsContainers(t *testing.T) {
	objs := mustParse(t, deployment)
	changes := injectStandin(objs, "https://10.250.0.1:4443/")
	if len(changes) != 2 {
		t.Errorf("changes: %q", changes)
	}
	spec := field(podTemplate(objs[0]), false, "spec")
	got, _ := json.Marshal(containers(spec))
	want := `[{"env":[{"name":"AZURE_RESOURCE","value":"r"},{"name":"AZURE_AUTHORITY_HOST","value":"https://10.250.0.1:4443/"},{"name":"SSL_CERT_FILE","value":"/etc/entratest/ca.pem"}],"image":"docker.io/densify/azure-rest-api-token:1.1.0","name":"azure-token","volumeMounts":[{"mountPath":"/etc/entratest","name":"entratest-ca","readOnly":true}]},{"image":"example.com/my-app:1.0.0","name":"app"}]`
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("containers (-want +got):\n%s", diff)
	}
	if vols, _ := json.Marshal(spec["volumes"]); !strings.Contains(string(vols), `"configMap":{"name":"entratest-ca"}`) {
		t.Errorf("volumes: %s", vols)
	}
}

func TestWebhookMutationSkipsListedContainers(t *testing.T) {
	objs := mustParse(t, deployment)
	changes := mutateLikeWebhook(objs, "client", "tenant", "https://a/")
	spec := field(podTemplate(objs[0]), false, "spec")
	cs := containers(spec)
	if !hasEnv(cs[0], "AZURE_FEDERATED_TOKEN_FILE") || hasEnv(cs[1], "AZURE_FEDERATED_TOKEN_FILE") || cs[1]["volumeMounts"] != nil {
		t.Errorf("want the token container mutated and the app skipped; changes %q", changes)
	}
	// Without the annotation, the webhook mutates every container: the app gets the token too.
	objs = mustParse(t, strings.Replace(deployment, `"azure.workload.identity/skip-containers":"app"`, `"x":"y"`, 1))
	mutateLikeWebhook(objs, "client", "tenant", "https://a/")
	cs = containers(field(podTemplate(objs[0]), false, "spec"))
	if !hasEnv(cs[1], "AZURE_FEDERATED_TOKEN_FILE") {
		t.Error("without skip-containers the app must get the federated token, as the webhook does")
	}
	// No label, no mutation.
	objs = mustParse(t, strings.Replace(deployment, `"azure.workload.identity/use":"true"`, `"x":"y"`, 1))
	if changes := mutateLikeWebhook(objs, "client", "tenant", "https://a/"); changes != nil {
		t.Errorf("unlabelled pod mutated: %q", changes)
	}
}

func TestDroppedFields(t *testing.T) {
	sent := mustParse(t, deployment)[0]
	live := mustParse(t, strings.Replace(deployment, `"env":[{"name":"AZURE_RESOURCE","value":"r"}]`, `"x":1`, 1))[0]
	if diff := cmp.Diff([]string{"container azure-token: env"}, droppedFields(sent, live)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if d := droppedFields(sent, sent); d != nil {
		t.Errorf("same object: %q", d)
	}
}

func TestParseObjectsStream(t *testing.T) {
	objs := mustParse(t, `{"kind":"ServiceAccount"}
{"kind":"List","items":[{"kind":"Deployment"},{"kind":"Job"}]}`)
	var kinds []any
	for _, o := range objs {
		kinds = append(kinds, o["kind"])
	}
	if diff := cmp.Diff([]any{"ServiceAccount", "Deployment", "Job"}, kinds); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

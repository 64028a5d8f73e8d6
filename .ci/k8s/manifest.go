package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// object is a Kubernetes object as JSON decodes it.
type object = map[string]any

// The one image the check builds, under the name every manifest pulls (the registry on this
// machine is docker.io's mirror).
const productImage = "densify/azure-rest-api-token"

// The Entra stand-in's CA, as the test copies mount it into the token container: a ConfigMap in
// each namespace.
const (
	caConfigMap = "entratest-ca"
	caDir       = "/etc/entratest"
	caFile      = caDir + "/ca.pem"
)

// parseObjects returns the objects of kubectl's JSON output for "create --dry-run=client -o json -f
// FILE": a stream of objects (one per document of FILE), or Lists of them.
func parseObjects(data []byte) ([]object, error) {
	var objs []object
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		var o object
		err := dec.Decode(&o)
		if err == io.EOF {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		if o["kind"] != "List" {
			objs = append(objs, o)
			continue
		}
		items, _ := o["items"].([]any)
		for _, it := range items {
			if m, ok := it.(object); ok {
				objs = append(objs, m)
			}
		}
	}
}

// field returns the map at path in o, creating the maps on the way when create is set; nil if
// absent.
func field(o object, create bool, path ...string) object {
	for _, p := range path {
		next, ok := o[p].(object)
		if !ok {
			if !create {
				return nil
			}
			next = object{}
			o[p] = next
		}
		o = next
	}
	return o
}

// podTemplate returns the pod template (metadata and spec) of a Pod, Deployment, Job or CronJob,
// or nil for other kinds.
func podTemplate(o object) object {
	switch o["kind"] {
	case "Pod":
		return o
	case "Deployment", "Job", "StatefulSet", "DaemonSet", "ReplicaSet":
		return field(o, false, "spec", "template")
	case "CronJob":
		return field(o, false, "spec", "jobTemplate", "spec", "template")
	}
	return nil
}

// containers returns the pod spec's init containers and containers, in that order.
func containers(spec object) []object {
	var cs []object
	for _, key := range []string{"initContainers", "containers"} {
		list, _ := spec[key].([]any)
		for _, c := range list {
			if m, ok := c.(object); ok {
				cs = append(cs, m)
			}
		}
	}
	return cs
}

func isProduct(c object) bool {
	image, _ := c["image"].(string)
	return strings.Contains(image, productImage+":") || strings.Contains(image, productImage+"@")
}

// setEnv sets name=value in container c's env, replacing a variable of that name.
func setEnv(c object, name, value string) {
	env, _ := c["env"].([]any)
	for _, e := range env {
		if m, ok := e.(object); ok && m["name"] == name {
			m["value"] = value
			delete(m, "valueFrom")
			return
		}
	}
	c["env"] = append(env, object{"name": name, "value": value})
}

func hasEnv(c object, name string) bool {
	env, _ := c["env"].([]any)
	return slices.ContainsFunc(env, func(e any) bool { m, _ := e.(object); return m["name"] == name })
}

func addMount(c object, name, path string) {
	mounts, _ := c["volumeMounts"].([]any)
	c["volumeMounts"] = append(mounts, object{"name": name, "mountPath": path, "readOnly": true})
}

func addVolume(spec object, volume object) {
	vols, _ := spec["volumes"].([]any)
	spec["volumes"] = append(vols, volume)
}

// injectStandin makes the test copy of objs: every container of the product's image gets the
// stand-in's authority (AZURE_AUTHORITY_HOST) and CA (SSL_CERT_FILE, from the ConfigMap
// caConfigMap mounted read-only at caDir). This is the only change the check makes to a shipped
// manifest; it returns the changes, one line each, for the log.
func injectStandin(objs []object, authority string) []string {
	var changes []string
	for _, o := range objs {
		tmpl := podTemplate(o)
		if tmpl == nil {
			continue
		}
		spec := field(tmpl, false, "spec")
		touched := false
		for _, c := range containers(spec) {
			if !isProduct(c) {
				continue
			}
			setEnv(c, "AZURE_AUTHORITY_HOST", authority)
			setEnv(c, "SSL_CERT_FILE", caFile)
			addMount(c, caConfigMap, caDir)
			touched = true
			changes = append(changes, fmt.Sprintf("%s %s: container %s: + env AZURE_AUTHORITY_HOST=%s, SSL_CERT_FILE=%s; + volumeMount %s at %s (read-only)",
				o["kind"], name(o), c["name"], authority, caFile, caConfigMap, caDir))
		}
		if touched {
			addVolume(spec, object{"name": caConfigMap, "configMap": object{"name": caConfigMap}})
			changes = append(changes, fmt.Sprintf("%s %s: + volume %s (ConfigMap %s)", o["kind"], name(o), caConfigMap, caConfigMap))
		}
	}
	return changes
}

func name(o object) string {
	n, _ := field(o, false, "metadata")["name"].(string)
	return n
}

// The azure-workload-identity webhook's names
// (https://azure.github.io/azure-workload-identity/docs/topics/service-account-labels-and-annotations.html).
const (
	wiUseLabel       = "azure.workload.identity/use"
	wiClientIDAnno   = "azure.workload.identity/client-id"
	wiTenantIDAnno   = "azure.workload.identity/tenant-id"
	wiSkipContainers = "azure.workload.identity/skip-containers"
	wiVolume         = "azure-identity-token"
	wiMountPath      = "/var/run/secrets/azure/tokens"
	wiTokenPath      = wiMountPath + "/azure-identity-token"
	wiAudience       = "api://AzureADTokenExchange"
)

// mutateLikeWebhook does to a pod template with the label azure.workload.identity/use "true"
// exactly what the azure-workload-identity mutating webhook (v1.5, pkg/webhook/webhook.go) adds:
// to every container, init containers included, except those listed in the pod annotation
// azure.workload.identity/skip-containers (separated by ";"), the env AZURE_CLIENT_ID (the
// ServiceAccount's annotation), AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE and
// AZURE_AUTHORITY_HOST (here the stand-in's), each unless already set, and the read-only mount
// of the projected volume azure-identity-token; and to the pod that volume: a service account token
// for the audience api://AzureADTokenExchange, valid 3600 s. It returns the changes.
func mutateLikeWebhook(objs []object, clientID, tenantID, authority string) []string {
	var changes []string
	for _, o := range objs {
		tmpl := podTemplate(o)
		if tmpl == nil {
			continue
		}
		meta := field(tmpl, true, "metadata")
		if labels := field(meta, false, "labels"); labels == nil || labels[wiUseLabel] != "true" {
			continue
		}
		var skip []string
		if annotations := field(meta, false, "annotations"); annotations != nil {
			s, _ := annotations[wiSkipContainers].(string)
			for _, n := range strings.Split(s, ";") {
				if n = strings.TrimSpace(n); n != "" {
					skip = append(skip, n)
				}
			}
		}
		spec := field(tmpl, false, "spec")
		for _, c := range containers(spec) {
			if slices.Contains(skip, c["name"].(string)) {
				changes = append(changes, fmt.Sprintf("%s %s: container %s: skipped (%s)", o["kind"], name(o), c["name"], wiSkipContainers))
				continue
			}
			for _, kv := range [][2]string{{"AZURE_CLIENT_ID", clientID}, {"AZURE_TENANT_ID", tenantID},
				{"AZURE_FEDERATED_TOKEN_FILE", wiTokenPath}, {"AZURE_AUTHORITY_HOST", authority}} {
				if !hasEnv(c, kv[0]) {
					setEnv(c, kv[0], kv[1])
				}
			}
			addMount(c, wiVolume, wiMountPath)
			changes = append(changes, fmt.Sprintf("%s %s: container %s: + env AZURE_CLIENT_ID=%s, AZURE_TENANT_ID=%s, AZURE_FEDERATED_TOKEN_FILE=%s, AZURE_AUTHORITY_HOST=%s; + volumeMount %s at %s (read-only)",
				o["kind"], name(o), c["name"], clientID, tenantID, wiTokenPath, authority, wiVolume, wiMountPath))
		}
		addVolume(spec, object{"name": wiVolume, "projected": object{"sources": []any{object{"serviceAccountToken": object{
			"path": "azure-identity-token", "audience": wiAudience, "expirationSeconds": 3600}}}}})
		changes = append(changes, fmt.Sprintf("%s %s: + volume %s (projected service account token, audience %s, 3600 s)", o["kind"], name(o), wiVolume, wiAudience))
	}
	return changes
}

// droppedFields returns the container fields that sent has and live (the object as the API server
// stored it) lacks: what the API server dropped silently, such as a field of a feature it does not
// have.
func droppedFields(sent, live object) []string {
	var dropped []string
	st, lt := podTemplate(sent), podTemplate(live)
	if st == nil || lt == nil {
		return nil
	}
	liveByName := map[string]object{}
	for _, c := range containers(field(lt, false, "spec")) {
		liveByName[c["name"].(string)] = c
	}
	for _, c := range containers(field(st, false, "spec")) {
		lc := liveByName[c["name"].(string)]
		for k := range c {
			if _, ok := lc[k]; !ok {
				dropped = append(dropped, fmt.Sprintf("container %s: %s", c["name"], k))
			}
		}
	}
	slices.Sort(dropped)
	return dropped
}

package main

import (
	"fmt"
	"path/filepath"
	"slices"
)

// expectation is what running one shipped manifest must do: the Secret it needs, how it runs,
// which container reads the token and as which user. Every deploy/*.yaml and deploy/testdata/*.yaml
// must have one (TestEveryManifestHasAnExpectation, and the e2e run refuses a file without one), so
// that a new example is run on the cluster from the day it is added.
type expectation struct {
	// secret is the Secret the manifest mounts, created with the README's command,
	// "kubectl create secret generic NAME --from-file=KEY" (plus --from-file=cert.pem=... for a
	// certificate); secretKey is its KEY: the service principal file.
	secret, secretKey string
	certificate       bool // the service principal has a certificate, no password
	workloadIdentity  bool // no Secret: the webhook's mutation and a federated credential
	configMap         string
	// namespace is the one the manifest names, if any; otherwise each run gets its own.
	namespace string
	// restricted: the namespace enforces Pod Security "restricted" (every shipped example must pass it).
	restricted bool
	kind       string // "CronJob" (kubectl create job --from=cronjob/NAME) or "Deployment"
	name       string // of the CronJob or Deployment
	reader     string // the container that reads the token (the reader image)
	readerUID  int
	// hardened: the reader's container runs with no capabilities, no new privileges, a seccomp
	// filter and a read-only root, as its securityContext asks.
	hardened bool
	// sidecar names the native sidecar, if the token container is one.
	sidecar string
	// managedIdentity: no Secret; the token container gets its token from the IMDS stand-in
	// (entratest.MIServer on the bridge's gateway, AZURE_POD_IDENTITY_AUTHORITY_HOST in the test
	// copy), which holds the user-assigned identity of this client ID.
	managedIdentity string
	// otherTokens are further token files the reader must find valid, path to resource
	// (BEARER_TOKEN_RESOURCES), read by the reader binary run in the reader's container.
	otherTokens map[string]string
	// metricsPort, if not 0, is the token container's BEARER_TOKEN_METRICS_ADDR port: /metrics must
	// answer on the pod's IP from the host, with a sample for each token file.
	metricsPort int
	// notRun, when set, says why the file is not run on the cluster yet: the run reports SKIP with
	// this reason, in the summary, rather than failing for want of an expectation.
	notRun string
}

// expectations, by path from the repository's root. A file listed here but absent from the tree
// is skipped (it may arrive with another branch).
var expectations = map[string]expectation{
	"deploy/densify-cronjob.yaml": {
		secret: "azmon", secretKey: "app.json", configMap: "densifyconf", restricted: true,
		kind: "CronJob", name: "densify-job", reader: "data-forwarder", readerUID: 3000, hardened: true,
	},
	// The CronJob existing clusters run for the shell-script image: unchanged, it still works with
	// this image (README, "Migrating"). It predates Pod Security: a namespace that does not enforce it.
	"deploy/testdata/densify-upstream-cronjob.yaml": {
		secret: "azmon", secretKey: "app.json", configMap: "densifyconf",
		kind: "CronJob", name: "densify-job", reader: "data-forwarder", readerUID: 3000,
	},
	"deploy/init-container-app.yaml": {
		secret: "prometheus-reader-sp", secretKey: "serviceprincipal.json", restricted: true,
		kind: "Deployment", name: "prometheus-client", reader: "app", readerUID: 10001, hardened: true,
	},
	"deploy/certificate.yaml": {
		secret: "prometheus-reader-cert", secretKey: "serviceprincipal.json", certificate: true, restricted: true,
		kind: "Deployment", name: "prometheus-client-cert", reader: "app", readerUID: 10001, hardened: true,
	},
	"deploy/sidecar-deployment.yaml": {
		secret: "prometheus-reader-sp", secretKey: "serviceprincipal.json", restricted: true,
		kind: "Deployment", name: "prometheus-reader", reader: "app", readerUID: 10001, hardened: true, sidecar: "azure-token",
	},
	// From issue 14 (on main; run here from main's copy): an init container for the first token and
	// the sidecar as a regular container, for clusters without native sidecars.
	"deploy/sidecar-deployment-older-clusters.yaml": {
		secret: "prometheus-reader-sp", secretKey: "serviceprincipal.json", restricted: true,
		kind: "Deployment", name: "prometheus-reader", reader: "app", readerUID: 10001, hardened: true,
	},
	// From issues 14 and 15, on main after this check was written (workload-identity-sidecar.yaml
	// proven here against main's copy).
	"deploy/workload-identity-sidecar.yaml": {
		workloadIdentity: true, namespace: "monitoring", restricted: true,
		kind: "Deployment", name: "prometheus-reader", reader: "app", readerUID: 10001, hardened: true, sidecar: "azure-token",
	},
	// From issue 18, on main after this check was written. The Prometheus Operator's resources hold
	// no pod.
	"deploy/podmonitor.yaml": {
		notRun: "a Prometheus Operator PodMonitor: no pod to run, and this cluster has no operator CRDs",
	},
	"deploy/prometheusrule.yaml": {
		notRun: "a Prometheus Operator PrometheusRule: no pod to run, and this cluster has no operator CRDs",
	},
	// Two tokens from one sidecar (BEARER_TOKEN_RESOURCES), and its metrics port.
	"deploy/sidecar-resources-metrics.yaml": {
		secret: "prometheus-reader-sp", secretKey: "serviceprincipal.json", restricted: true,
		kind: "Deployment", name: "azure-reader", reader: "app", readerUID: 10001, hardened: true, sidecar: "azure-token",
		otherTokens: map[string]string{"/var/run/azure-token/arm.json": "https://management.azure.com/"},
		metricsPort: 9464,
	},
	// Its NetworkPolicies are accepted but not enforced: this cluster has no network policy engine.
	"deploy/managed-identity.yaml": {
		managedIdentity: "00000000-0000-0000-0000-000000000000", namespace: "monitoring", restricted: true,
		kind: "Deployment", name: "prometheus-reader-mi", reader: "app", readerUID: 10001, hardened: true, sidecar: "azure-token",
	},
	"deploy/workload-identity.yaml": {
		workloadIdentity: true, namespace: "monitoring", restricted: true,
		kind: "Deployment", name: "prometheus-client", reader: "app", readerUID: 10001, hardened: true,
	},
}

// shippedManifests returns the manifests under repo that must have an expectation, relative to repo.
func shippedManifests(repo string) ([]string, error) {
	var files []string
	for _, pattern := range []string{"deploy/*.yaml", "deploy/testdata/*.yaml"} {
		m, err := filepath.Glob(filepath.Join(repo, pattern))
		if err != nil {
			return nil, err
		}
		for _, f := range m {
			rel, _ := filepath.Rel(repo, f)
			files = append(files, rel)
		}
	}
	slices.Sort(files)
	return files, nil
}

// missingExpectations returns an error naming every shipped manifest without an expectation.
func missingExpectations(files []string) error {
	var missing []string
	for _, f := range files {
		if _, ok := expectations[f]; !ok {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("no expectation for %q: add each to expectations in .ci/k8s/expect.go (its Secret, kind, name, reader container and user), so that the cluster check runs it", missing)
	}
	return nil
}

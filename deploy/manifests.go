// Package deploy holds the example manifests of azure-rest-api-token (the *.yaml files beside this
// one) and the code that checks them: every document decodes strictly into its k8s.io/api type, and
// every pod template passes Pod Security "restricted". It is a module of its own, so that the
// Kubernetes libraries stay out of the product's go.mod. The admission policies in admission/ are
// checked elsewhere.
package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

// Manifests returns the paths of the shipped manifests: every *.yaml file directly in dir (not in
// admission/ or testdata/), sorted.
func Manifests(dir string) ([]string, error) {
	return filepath.Glob(filepath.Join(dir, "*.yaml"))
}

var decoder = func() runtime.Decoder {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme, networkingv1.AddToScheme, monitoringv1.AddToScheme} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
	// EnableStrict: an unknown field or a duplicate field is an error, not a silent drop.
	return serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
}()

// Decode splits data, a YAML stream, into its documents and decodes each strictly into its k8s.io/api
// type (ServiceAccount, Pod, Deployment, Job, CronJob, NetworkPolicy: the kinds the examples use), or
// into the Prometheus Operator's (PodMonitor, PrometheusRule: its Go types, from its own module). It returns the
// objects in order, or the first error, naming the document (1-based); an unknown or duplicate field
// is an error.
func Decode(data []byte) ([]runtime.Object, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []runtime.Object
	for n := 1; ; n++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, _, err := decoder.Decode(doc, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		objs = append(objs, obj)
	}
}

// DecodeFile is [Decode] of the file at path.
func DecodeFile(path string) ([]runtime.Object, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	objs, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return objs, nil
}

// PodTemplate returns the pod metadata and spec that obj runs (a Pod's own, or the template of a
// Deployment, Job or CronJob), and false for objects that run no pod.
func PodTemplate(obj runtime.Object) (*metav1.ObjectMeta, *corev1.PodSpec, bool) {
	switch o := obj.(type) {
	case *corev1.Pod:
		return &o.ObjectMeta, &o.Spec, true
	case *appsv1.Deployment:
		return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec, true
	case *batchv1.Job:
		return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec, true
	case *batchv1.CronJob:
		return &o.Spec.JobTemplate.Spec.Template.ObjectMeta, &o.Spec.JobTemplate.Spec.Template.Spec, true
	}
	return nil, nil, false
}

var evaluator = func() policy.Evaluator {
	e, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		panic(err)
	}
	return e
}()

// Restricted evaluates a pod against Pod Security "restricted" at the latest policy version, as a
// namespace labelled pod-security.kubernetes.io/enforce=restricted does. It returns nil if the pod
// is allowed, else an error listing every forbidden reason with its details.
func Restricted(meta *metav1.ObjectMeta, spec *corev1.PodSpec) error {
	lv := psaapi.LevelVersion{Level: psaapi.LevelRestricted, Version: psaapi.LatestVersion()}
	result := policy.AggregateCheckResults(evaluator.EvaluatePod(lv, meta, spec))
	if !result.Allowed {
		return fmt.Errorf("violates PodSecurity %q: %s", "restricted:latest", result.ForbiddenDetail())
	}
	return nil
}

// Hardened returns an error naming the first container (init, sidecar or main) of spec whose
// securityContext lacks one of the settings every example sets: runAsNonRoot (the container's or the
// pod's), readOnlyRootFilesystem, allowPrivilegeEscalation false, capabilities drop ALL, and a
// RuntimeDefault seccomp profile (the container's or the pod's). Pod Security "restricted" does not
// require a read-only root; the examples do.
func Hardened(spec *corev1.PodSpec) error {
	pod := spec.SecurityContext
	if pod == nil {
		pod = &corev1.PodSecurityContext{}
	}
	all := append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
	for _, c := range all {
		sc := c.SecurityContext
		if sc == nil {
			return fmt.Errorf("container %q: no securityContext", c.Name)
		}
		nonRoot := (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) || (sc.RunAsNonRoot == nil && pod.RunAsNonRoot != nil && *pod.RunAsNonRoot)
		seccomp := sc.SeccompProfile
		if seccomp == nil {
			seccomp = pod.SeccompProfile
		}
		dropAll := false
		if sc.Capabilities != nil {
			for _, d := range sc.Capabilities.Drop {
				dropAll = dropAll || d == "ALL"
			}
		}
		switch {
		case !nonRoot:
			return fmt.Errorf("container %q: runAsNonRoot is not true", c.Name)
		case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
			return fmt.Errorf("container %q: readOnlyRootFilesystem is not true", c.Name)
		case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
			return fmt.Errorf("container %q: allowPrivilegeEscalation is not false", c.Name)
		case !dropAll:
			return fmt.Errorf("container %q: capabilities do not drop ALL", c.Name)
		case seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault:
			return fmt.Errorf("container %q: seccompProfile is not RuntimeDefault", c.Name)
		}
	}
	return nil
}

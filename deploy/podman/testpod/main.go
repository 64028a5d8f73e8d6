// Command testpod makes the copy of a shipped manifest that .ci/podman-check runs with
// "podman kube play": the manifest's pod, changed only where a test on one machine must, each change
// listed on standard error. It reads the manifest with the same strict decoding as the tests and
// writes a Pod to standard output.
//
//	testpod -image REF -reader REF -authority URL -ca FILE [-imds URL] -secret NAME=DIR... [-emptydir DIR] MANIFEST
//
// The changes:
//   - kind: the pod template of a CronJob, Job or Deployment becomes a Pod (podman 4.3 plays Pods and
//     Deployments, not Jobs), named like the manifest's object, with restartPolicy Never, so that
//     a finished reader is not restarted;
//   - hostNetwork: true, so that the pod reaches the Entra stand-in on 127.0.0.1;
//   - the azure-rest-api-token containers run -image (the image built from this tree), with
//     AZURE_AUTHORITY_HOST set to the stand-in and SSL_CERT_FILE to its CA, mounted read-only from a
//     hostPath; or, with managed identity (ENTRA_MANAGED_IDENTITY), AZURE_POD_IDENTITY_AUTHORITY_HOST
//     set to -imds, the IMDS stand-in;
//   - every other container (the app, the data forwarder) runs -reader instead, with the same user,
//     mounts and securityContext, and arguments telling it which file to read and the audience to
//     expect (taken from the token container's BEARER_TOKEN_FILE, mapped through the shared volume,
//     and AZURE_RESOURCE);
//   - secret volumes become hostPath volumes of directories laid out as the kubelet lays out a
//     Secret (podman 4.3.1 crashes on secret volumes in kube play);
//   - container ports of the token container are dropped (podman refuses port mappings with
//     hostNetwork; the metrics port is the host's);
//   - a native sidecar (an init container with restartPolicy Always) becomes a regular container
//     without probes: podman 4.3 knows neither; a token container that is already a regular container
//     (sidecar-deployment-older-clusters.yaml) loses its probes too;
//   - with -emptydir DIR, every emptyDir volume becomes a hostPath DIR/NAME made mode 0777, as the
//     kubelet makes an emptyDir (podman gives a new volume to the user of whichever container mounts
//     it first, at random among regular containers, so that another user could not write it);
//   - every ConfigMap a volume names is written before the Pod, with a placeholder for each key
//     (kube play refuses a pod whose ConfigMap it does not have).
package main

import (
	"flag"
	"fmt"
	"os"
	"path"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/densify-dev/azure-rest-api-token/deploy"
)

const caMount = "/etc/entra-standin"

type secrets map[string]string

func (s secrets) String() string { return fmt.Sprint(map[string]string(s)) }
func (s secrets) Set(v string) error {
	name, dir, ok := strings.Cut(v, "=")
	if !ok {
		return fmt.Errorf("want NAME=DIR")
	}
	s[name] = dir
	return nil
}

func main() {
	image := flag.String("image", "", "image for the azure-rest-api-token containers")
	reader := flag.String("reader", "", "image for every other container")
	readerArgs := flag.String("reader-args", "", "extra arguments for the reader, space-separated")
	authority := flag.String("authority", "", "AZURE_AUTHORITY_HOST: the Entra stand-in")
	ca := flag.String("ca", "", "host path of the stand-in's CA certificate (PEM)")
	imds := flag.String("imds", "", "AZURE_POD_IDENTITY_AUTHORITY_HOST: the IMDS stand-in, for managed identity")
	emptyDirs := flag.String("emptydir", "", "`directory` in which each emptyDir volume becomes a hostPath of mode 0777")
	sec := secrets{}
	flag.Var(sec, "secret", "`NAME=DIR`: the host directory laid out as Secret NAME (repeatable)")
	flag.Parse()
	if flag.NArg() != 1 || *image == "" || *reader == "" || *authority == "" || *ca == "" {
		fmt.Fprintln(os.Stderr, "usage: testpod -image REF -reader REF -authority URL -ca FILE -secret NAME=DIR... MANIFEST")
		os.Exit(2)
	}
	pod, err := transform(flag.Arg(0), *image, *reader, strings.Fields(*readerArgs), *authority, *ca, *imds, sec)
	if err == nil && *emptyDirs != "" {
		err = hostEmptyDirs(&pod.Spec, *emptyDirs)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "testpod:", err)
		os.Exit(1)
	}
	for _, v := range pod.Spec.Volumes {
		if v.ConfigMap == nil {
			continue
		}
		cm := &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			ObjectMeta: metav1.ObjectMeta{Name: v.ConfigMap.Name}, Data: map[string]string{}}
		for _, it := range v.ConfigMap.Items {
			cm.Data[it.Key] = "# placeholder written by testpod\n"
		}
		note("ConfigMap %q: a placeholder for the keys the pod mounts", cm.Name)
		emit(cm)
	}
	emit(pod)
}

func emit(obj any) {
	out, err := yaml.Marshal(obj)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testpod:", err)
		os.Exit(1)
	}
	fmt.Printf("---\n%s", out)
}

func note(format string, args ...any) { fmt.Fprintf(os.Stderr, "testpod: "+format+"\n", args...) }

func transform(file, image, reader string, readerArgs []string, authority, ca, imds string, sec secrets) (*corev1.Pod, error) {
	objs, err := deploy.DecodeFile(file)
	if err != nil {
		return nil, err
	}
	for _, obj := range objs {
		meta, spec, ok := deploy.PodTemplate(obj)
		if !ok {
			continue
		}
		name := obj.(metav1.Object).GetName()
		pod := &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}}
		pod.ObjectMeta = metav1.ObjectMeta{Name: name, Labels: meta.Labels, Annotations: meta.Annotations}
		pod.Spec = *spec.DeepCopy()
		note("%s: the pod of %s %q, as Pod %q", file, obj.GetObjectKind().GroupVersionKind().Kind, name, name)
		return pod, edit(&pod.Spec, image, reader, readerArgs, authority, ca, imds, sec)
	}
	return nil, fmt.Errorf("%s: no pod template", file)
}

func isToken(c *corev1.Container) bool { return strings.Contains(c.Image, "azure-rest-api-token") }

func env(c *corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func edit(spec *corev1.PodSpec, image, reader string, readerArgs []string, authority, ca, imds string, sec secrets) error {
	if spec.RestartPolicy != corev1.RestartPolicyNever {
		note("restartPolicy %q (empty: Always) -> Never: a reader that has finished is not restarted", spec.RestartPolicy)
		spec.RestartPolicy = corev1.RestartPolicyNever
	}
	spec.HostNetwork = true
	note("hostNetwork: true (the stand-in listens on 127.0.0.1)")

	// Native sidecars become regular containers, first.
	var inits []corev1.Container
	for _, c := range spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			note("container %q: native sidecar -> regular container, probes dropped (podman 4.3 has neither)", c.Name)
			c.RestartPolicy, c.StartupProbe, c.LivenessProbe, c.ReadinessProbe = nil, nil, nil, nil
			spec.Containers = append([]corev1.Container{c}, spec.Containers...)
			continue
		}
		inits = append(inits, c)
	}
	spec.InitContainers = inits

	// The token container: where it writes, the audience.
	var tokenFile, audience string
	var tokenMounts []corev1.VolumeMount
	tokenContainers := map[string]bool{}
	for _, list := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range list {
			c := &list[i]
			if !isToken(c) {
				continue
			}
			tokenContainers[c.Name] = true
			if c.StartupProbe != nil || c.LivenessProbe != nil || c.ReadinessProbe != nil {
				note("container %q: probes dropped (podman 4.3 does not run them)", c.Name)
				c.StartupProbe, c.LivenessProbe, c.ReadinessProbe = nil, nil, nil
			}
			note("container %q: image %s -> %s", c.Name, c.Image, image)
			c.Image = image
			c.ImagePullPolicy = corev1.PullIfNotPresent
			if len(c.Ports) > 0 {
				note("container %q: ports dropped (podman refuses port mappings with hostNetwork; the port is the host's)", c.Name)
				c.Ports = nil
			}
			tokenFile, audience, tokenMounts = env(c, "BEARER_TOKEN_FILE"), env(c, "BEARER_TOKEN_AUDIENCE"), c.VolumeMounts
			if audience == "" {
				audience = env(c, "AZURE_RESOURCE")
			}
			if env(c, "ENTRA_MANAGED_IDENTITY") != "" {
				if imds == "" {
					return fmt.Errorf("container %q: managed identity, but no -imds", c.Name)
				}
				c.Env = append(c.Env, corev1.EnvVar{Name: "AZURE_POD_IDENTITY_AUTHORITY_HOST", Value: imds})
				note("container %q: + AZURE_POD_IDENTITY_AUTHORITY_HOST=%s (managed identity: the IMDS stand-in)", c.Name, imds)
				continue
			}
			c.Env = append(c.Env,
				corev1.EnvVar{Name: "AZURE_AUTHORITY_HOST", Value: authority},
				corev1.EnvVar{Name: "SSL_CERT_FILE", Value: caMount + "/ca.pem"})
			note("container %q: + AZURE_AUTHORITY_HOST=%s, SSL_CERT_FILE=%s/ca.pem (hostPath %s, read-only)", c.Name, authority, caMount, path.Dir(ca))
			c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "entra-standin-ca", MountPath: caMount, ReadOnly: true})
		}
	}
	if tokenFile == "" {
		return fmt.Errorf("no azure-rest-api-token container with BEARER_TOKEN_FILE")
	}
	dirType := corev1.HostPathDirectory
	spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "entra-standin-ca",
		VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: path.Dir(ca), Type: &dirType}}})

	// Every other container reads the token file through its own mount of the same volume.
	for i := range spec.Containers {
		c := &spec.Containers[i]
		if tokenContainers[c.Name] {
			continue
		}
		file, err := through(tokenFile, tokenMounts, c.VolumeMounts)
		if err != nil {
			return fmt.Errorf("container %q: %w", c.Name, err)
		}
		note("container %q: image %s -> the reader %s, reading %s (aud %s)", c.Name, c.Image, reader, file, audience)
		c.Image, c.ImagePullPolicy, c.Command = reader, corev1.PullIfNotPresent, nil
		c.Args = append([]string{"-file", file, "-audience", audience}, readerArgs...)
	}

	for i := range spec.Volumes {
		v := &spec.Volumes[i]
		if v.Secret == nil {
			continue
		}
		dir, ok := sec[v.Secret.SecretName]
		if !ok {
			return fmt.Errorf("volume %q: no -secret %s=DIR", v.Name, v.Secret.SecretName)
		}
		note("volume %q: secret %q -> hostPath %s (laid out as a Secret volume)", v.Name, v.Secret.SecretName, dir)
		v.VolumeSource = corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: dir, Type: &dirType}}
	}
	return nil
}

// through maps file, as the token container sees it through mounts, to the path under which a
// container with mounts other sees it: the same volume, perhaps elsewhere.
func through(file string, mounts, other []corev1.VolumeMount) (string, error) {
	for _, m := range mounts {
		rel, ok := strings.CutPrefix(file, strings.TrimSuffix(m.MountPath, "/")+"/")
		if !ok {
			continue
		}
		for _, o := range other {
			if o.Name == m.Name {
				return path.Join(o.MountPath, rel), nil
			}
		}
		return "", fmt.Errorf("does not mount volume %q, where the token is", m.Name)
	}
	return "", fmt.Errorf("the token file %s is on no volume", file)
}

// hostEmptyDirs replaces every emptyDir volume of spec with a hostPath directory root/NAME, created with
// mode 0777 as the kubelet creates an emptyDir.
func hostEmptyDirs(spec *corev1.PodSpec, root string) error {
	dirType := corev1.HostPathDirectory
	for i := range spec.Volumes {
		v := &spec.Volumes[i]
		if v.EmptyDir == nil {
			continue
		}
		dir := path.Join(root, v.Name)
		if err := os.MkdirAll(dir, 0o777); err != nil {
			return err
		}
		if err := os.Chmod(dir, 0o777); err != nil { // whatever the umask
			return err
		}
		note("volume %q: emptyDir -> hostPath %s, mode 0777 as the kubelet makes an emptyDir", v.Name, dir)
		v.VolumeSource = corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: dir, Type: &dirType}}
	}
	return nil
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The node's fixed addresses. The pod network is a bridge of our own; pods reach the node, and the
// Entra stand-in on it, at the bridge's gateway address. Nothing is masqueraded: no pod traffic
// leaves the machine.
const (
	bridgeName   = "k8scheck0"
	podSubnet    = "10.250.0.0/24"
	gatewayIP    = "10.250.0.1"
	bridgeMAC    = "02:6b:38:73:00:01" // locally administered
	serviceRange = "10.251.0.0/24"
	serviceIP    = "10.251.0.1"
	apiServerURL = "https://127.0.0.1:6443"
	// nodeName resolves to the loopback address on any machine: the API server reaches the kubelet,
	// which listens on 127.0.0.1 only, by its host name.
	nodeName = "localhost"
	// pauseImage is containerd's sandbox image, pulled like any other through the mirror.
	pauseImage = "registry.k8s.io/pause:3.10"
)

// mirrored are the registries containerd pulls from the registry on this machine instead: hosts.toml
// with server = the local registry, so that a failed pull fails rather than going out.
var mirrored = []string{"docker.io", "example.com", "registry.k8s.io"}

// hostSysctls are what the kubelet and the CNI bridge plugin change on the host: saved before the
// cluster starts, written back after.
var hostSysctls = []string{
	"vm.overcommit_memory", "vm.panic_on_oom", "kernel.panic", "kernel.panic_on_oops",
	"kernel.keys.root_maxkeys", "kernel.keys.root_maxbytes", "net.ipv4.ip_forward",
}

// components in start order; down stops them in reverse groups (see down).
var components = []string{"containerd", "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet"}

// cluster is a single-node Kubernetes run from one directory: every file it writes is under dir
// (state, logs, PID files, a record of the host's settings it changes), except the host changes
// that down undoes: sysctls, iptables chains, the bridge, cgroups, the CNI result cache.
type cluster struct {
	dir      string // absolute
	bin      string // holds the multi-call binary's names (etcd, kube-apiserver, ..., kubectl) and crictl
	nodeIP   string
	registry string // host:port
	out      io.Writer
}

func (c *cluster) path(elem ...string) string {
	return filepath.Join(append([]string{c.dir}, elem...)...)
}
func (c *cluster) socket() string     { return c.path("run", "containerd.sock") }
func (c *cluster) kubeconfig() string { return c.path("admin.kubeconfig") }

func (c *cluster) logf(format string, args ...any) {
	fmt.Fprintf(c.out, "[cluster] "+format+"\n", args...)
}

// up starts containerd, etcd, the API server, the controller manager, the scheduler and the kubelet,
// and returns when the node is Ready and the default namespace has its ServiceAccount; on error
// the caller runs down.
func (c *cluster) up(ctx context.Context) error {
	start := time.Now()
	for _, d := range []string{"logs", "pids", "run", "host", "etcd", "kubelet", "pod-logs", "cni/net.d", "cni/ipam"} {
		if err := os.MkdirAll(c.path(d), 0o755); err != nil {
			return err
		}
	}
	if err := c.saveHost(); err != nil {
		return fmt.Errorf("saving the host's settings: %w", err)
	}
	if c.nodeIP == "" {
		ip, err := defaultAddress()
		if err != nil {
			return err
		}
		c.nodeIP = ip
	}
	err := writePKI(c.dir, apiServerURL, []identity{
		{name: "apiserver", cn: "kube-apiserver", dns: []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local", "localhost"}, ips: []net.IP{net.IPv4(127, 0, 0, 1), net.ParseIP(serviceIP), net.ParseIP(c.nodeIP)}},
		{name: "apiserver-kubelet-client", cn: "kube-apiserver-kubelet-client", orgs: []string{"system:masters"}},
		{name: "admin", cn: "k8s-check-admin", orgs: []string{"system:masters"}},
		{name: "controller-manager", cn: "system:kube-controller-manager"},
		{name: "scheduler", cn: "system:kube-scheduler"},
		{name: "kubelet", cn: "system:node:" + nodeName, orgs: []string{"system:nodes"}},
	})
	if err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	if err := c.writeConfig(); err != nil {
		return err
	}
	// The bridge exists before the first pod, with its gateway address, so that the Entra stand-in
	// can listen there from the start; the CNI bridge plugin takes it as it is. Its MAC address is
	// set, not left to the kernel: a bridge without one takes the lowest of its ports', which
	// changes as pods come and go, and pods whose ARP cache holds the old one lose their first
	// connections to the gateway (10 s dial timeouts, seen here with pods started in parallel).
	for _, args := range [][]string{
		{"link", "add", bridgeName, "type", "bridge"},
		{"link", "set", bridgeName, "address", bridgeMAC},
		{"addr", "add", gatewayIP + "/24", "dev", bridgeName},
		{"link", "set", bridgeName, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}

	// containerd pulls only from the mirror; the proxy settings are a second fence.
	offline := []string{"HTTPS_PROXY=http://127.0.0.1:9", "HTTP_PROXY=http://127.0.0.1:9", "NO_PROXY=127.0.0.1,localhost"}
	if err := c.start("containerd", offline, "containerd", "--config", c.path("containerd.toml")); err != nil {
		return err
	}
	if err := c.waitFor(ctx, "containerd", 30*time.Second, func() error {
		return exec.Command(c.bin+"/crictl", "--config", c.path("crictl.yaml"), "version").Run()
	}); err != nil {
		return err
	}
	if err := c.start("etcd", nil, c.bin+"/etcd", "--name", "k8s-check", "--data-dir", c.path("etcd"),
		"--listen-client-urls", "http://127.0.0.1:2379", "--advertise-client-urls", "http://127.0.0.1:2379",
		"--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
		"--initial-cluster", "k8s-check=http://127.0.0.1:2380", "--listen-metrics-urls", "http://127.0.0.1:2381",
		"--unsafe-no-fsync"); err != nil {
		return err
	}
	if err := c.waitFor(ctx, "etcd", 30*time.Second, func() error { return httpOK(nil, "http://127.0.0.1:2379/health") }); err != nil {
		return err
	}
	pki := c.path("pki")
	if err := c.start("kube-apiserver", offline, c.bin+"/kube-apiserver",
		"--etcd-servers=http://127.0.0.1:2379",
		"--bind-address=127.0.0.1", "--advertise-address="+c.nodeIP, "--secure-port=6443",
		"--client-ca-file="+pki+"/ca.crt",
		"--tls-cert-file="+pki+"/apiserver.crt", "--tls-private-key-file="+pki+"/apiserver.key",
		"--kubelet-client-certificate="+pki+"/apiserver-kubelet-client.crt", "--kubelet-client-key="+pki+"/apiserver-kubelet-client.key",
		"--kubelet-preferred-address-types=Hostname",
		"--service-account-key-file="+pki+"/sa.pub", "--service-account-signing-key-file="+pki+"/sa.key",
		// The issuer is the API server's own URL, so that its discovery document and /openid/v1/jwks
		// are where the issuer says: what Entra fetches to verify a federated token.
		"--service-account-issuer="+apiServerURL, "--service-account-jwks-uri="+apiServerURL+"/openid/v1/jwks",
		"--service-cluster-ip-range="+serviceRange,
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction,PodSecurity",
		"--profiling=false"); err != nil {
		return err
	}
	admin, err := c.adminClient()
	if err != nil {
		return err
	}
	if err := c.waitFor(ctx, "kube-apiserver", 120*time.Second, func() error { return httpOK(admin, apiServerURL+"/readyz") }); err != nil {
		return err
	}
	for _, s := range []struct {
		name string
		args []string
	}{
		{"kube-controller-manager", []string{
			"--kubeconfig=" + c.path("controller-manager.kubeconfig"),
			"--authentication-kubeconfig=" + c.path("controller-manager.kubeconfig"),
			"--authorization-kubeconfig=" + c.path("controller-manager.kubeconfig"),
			"--bind-address=127.0.0.1", "--leader-elect=false",
			"--service-account-private-key-file=" + pki + "/sa.key", "--root-ca-file=" + pki + "/ca.crt",
			"--use-service-account-credentials=true",
			"--cluster-signing-cert-file=" + pki + "/ca.crt", "--cluster-signing-key-file=" + pki + "/ca.key",
			"--service-cluster-ip-range=" + serviceRange, "--profiling=false"}},
		{"kube-scheduler", []string{
			"--kubeconfig=" + c.path("scheduler.kubeconfig"),
			"--authentication-kubeconfig=" + c.path("scheduler.kubeconfig"),
			"--authorization-kubeconfig=" + c.path("scheduler.kubeconfig"),
			"--bind-address=127.0.0.1", "--leader-elect=false", "--profiling=false"}},
		{"kubelet", []string{
			"--config=" + c.path("kubelet-config.yaml"), "--kubeconfig=" + c.path("kubelet.kubeconfig"),
			"--root-dir=" + c.path("kubelet"), "--cert-dir=" + c.path("kubelet", "pki"),
			"--hostname-override=" + nodeName, "--node-ip=" + c.nodeIP}},
	} {
		if err := c.start(s.name, offline, c.bin+"/"+s.name, s.args...); err != nil {
			return err
		}
	}
	kubectl := func(args ...string) error {
		return exec.Command(c.bin+"/kubectl", append([]string{"--kubeconfig", c.kubeconfig()}, args...)...).Run()
	}
	if err := c.waitFor(ctx, "node Ready", 180*time.Second, func() error {
		return kubectl("wait", "--for=condition=Ready", "node/"+nodeName, "--timeout=2s")
	}); err != nil {
		return err
	}
	if err := c.waitFor(ctx, "default ServiceAccount", 120*time.Second, func() error {
		return kubectl("-n", "default", "get", "serviceaccount", "default")
	}); err != nil {
		return err
	}
	// Entra fetches the issuer's discovery document and keys without credentials: let anyone read
	// them, as a public OIDC issuer (AKS's) serves them.
	if out, err := exec.Command(c.bin+"/kubectl", "--kubeconfig", c.kubeconfig(), "create", "clusterrolebinding",
		"service-account-issuer-discovery-public", "--clusterrole=system:service-account-issuer-discovery",
		"--group=system:unauthenticated").CombinedOutput(); err != nil {
		return fmt.Errorf("clusterrolebinding: %v: %s", err, out)
	}
	c.logf("up in %.1fs (node %s, node IP %s, pods on %s via %s)", time.Since(start).Seconds(), nodeName, c.nodeIP, podSubnet, bridgeName)
	return nil
}

// writeConfig writes the configuration files of containerd (with its registry mirrors), the CNI
// bridge, the kubelet and crictl.
func (c *cluster) writeConfig() error {
	files := map[string]string{
		"containerd.toml": `version = 2
root = "` + c.path("containerd", "root") + `"
state = "` + c.path("containerd", "state") + `"

[grpc]
  address = "` + c.socket() + `"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "` + pauseImage + `"
  enable_selinux = false
  netns_mounts_under_state_dir = true
  # Without CAP_SYS_RESOURCE (some VMs and containers drop it) the negative oom_score_adj that the
  # CRI gives a sandbox (-998) makes runc fail: "can't get final child's PID from pipe: EOF".
  # Clamp it to containerd's own score instead.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "` + c.path("cni", "net.d") + `"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "` + c.path("certs.d") + `"
`,
		"cni/net.d/10-k8s-check.conflist": `{
  "cniVersion": "0.4.0",
  "name": "k8s-check",
  "plugins": [
    {"type": "bridge", "bridge": "` + bridgeName + `", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "` + c.path("cni", "ipam") + `", "ranges": [[{"subnet": "` + podSubnet + `", "gateway": "` + gatewayIP + `"}]]}},
    {"type": "loopback"}
  ]
}
`,
		"kubelet-config.yaml": `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "` + c.path("pki", "ca.crt") + `"}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
containerRuntimeEndpoint: "unix://` + c.socket() + `"
failSwapOn: false
failCgroupV1: false
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
podLogsDir: "` + c.path("pod-logs") + `"
rotateCertificates: false
serverTLSBootstrap: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
nodeStatusUpdateFrequency: 5s
syncFrequency: 10s
`,
		"crictl.yaml": "runtime-endpoint: unix://" + c.socket() + "\nimage-endpoint: unix://" + c.socket() + "\ntimeout: 30\n",
	}
	for _, host := range mirrored {
		files["certs.d/"+host+"/hosts.toml"] = fmt.Sprintf("server = \"http://%s\"\n\n[host.\"http://%s\"]\n  capabilities = [\"pull\", \"resolve\"]\n", c.registry, c.registry)
	}
	for name, text := range files {
		p := c.path(name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// start runs a component in the background, its output in logs/NAME.log, its PID in pids/NAME, in
// a process group of its own (a signal to the check's group does not reach it before down does).
func (c *cluster) start(name string, env []string, path string, args ...string) error {
	log, err := os.Create(c.path("logs", name+".log"))
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	go cmd.Wait() //nolint:errcheck // reaps it; down stops it by PID
	return os.WriteFile(c.path("pids", name), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644)
}

// waitFor polls ready every 200 ms until it succeeds or timeout has passed.
func (c *cluster) waitFor(ctx context.Context, what string, timeout time.Duration, ready func() error) error {
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		err := ready()
		if err == nil {
			c.logf("%s ready after %.1fs", what, time.Since(start).Seconds())
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s not ready after %v: %v (logs in %s)", what, timeout, err, c.path("logs"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// adminClient returns an HTTPS client with the admin's certificate that trusts the cluster's CA.
func (c *cluster) adminClient() (*http.Client, error) {
	pool, err := c.caPool()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(c.path("pki", "admin.crt"), c.path("pki", "admin.key"))
	if err != nil {
		return nil, err
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		Proxy:           nil,
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}},
	}}, nil
}

func (c *cluster) caPool() (*x509.CertPool, error) {
	ca, err := os.ReadFile(c.path("pki", "ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	return pool, nil
}

func httpOK(client *http.Client, url string) error {
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	}
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// defaultAddress returns the IPv4 source address of the default route: the node's InternalIP.
func defaultAddress() (string, error) {
	out, err := exec.Command("ip", "-4", "-o", "route", "get", "192.0.2.1").Output()
	if err == nil {
		f := strings.Fields(string(out))
		if i := slices.Index(f, "src"); i >= 0 && i+1 < len(f) {
			return f[i+1], nil
		}
	}
	return "", fmt.Errorf("no IPv4 default route to take the node's address from (%v): set K8SCHECK_NODE_IP", err)
}

// saveHost records the sysctls in hostSysctls and the iptables chains and cgroups that exist now,
// so that down removes only what the cluster added. A second up over the same directory keeps the
// first record.
func (c *cluster) saveHost() error {
	if _, err := os.Stat(c.path("host", "sysctl")); err == nil {
		return nil
	}
	var b strings.Builder
	for _, k := range hostSysctls {
		v, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(k, ".", "/"))
		if err != nil {
			continue
		}
		fmt.Fprintf(&b, "%s=%s\n", k, strings.TrimSpace(string(v)))
	}
	if err := os.WriteFile(c.path("host", "sysctl"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(c.path("host", "chains"), []byte(strings.Join(kubeChains(), "\n")), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(c.path("host", "cgroups"), []byte(strings.Join(kubeCgroups(), "\n")), 0o644); err != nil {
		return err
	}
	if _, err := os.Stat("/sys/class/net/" + bridgeName); err == nil {
		return fmt.Errorf("the bridge %s exists already: another cluster check is running, or one was killed before its teardown (ip link del %s)", bridgeName, bridgeName)
	}
	return nil
}

// kubeChains returns "TOOL TABLE CHAIN" for every KUBE-* chain in iptables and ip6tables.
func kubeChains() []string {
	var chains []string
	for _, tool := range []string{"iptables", "ip6tables"} {
		for _, table := range []string{"filter", "nat", "mangle"} {
			out, _ := exec.Command(tool, "-w", "-t", table, "-S").Output()
			for _, l := range strings.Split(string(out), "\n") {
				if name, ok := strings.CutPrefix(l, "-N KUBE-"); ok {
					chains = append(chains, tool+" "+table+" KUBE-"+name)
				}
			}
		}
	}
	return chains
}

// kubeCgroups returns the kubelet's cgroup directories (v1 hierarchies and the unified one).
func kubeCgroups() []string {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods")
	if _, err := os.Stat("/sys/fs/cgroup/kubepods"); err == nil {
		dirs = append(dirs, "/sys/fs/cgroup/kubepods")
	}
	return dirs
}

func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// stop sends SIGTERM to the named components, by the PIDs in their files, waits up to 20 s for
// them to exit, then sends SIGKILL.
func (c *cluster) stop(names ...string) {
	var pids []int
	for _, n := range names {
		if pid := readPID(c.path("pids", n)); pid > 0 && alive(pid) && c.ours(pid) {
			_ = syscall.Kill(pid, syscall.SIGTERM)
			pids = append(pids, pid)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && slices.ContainsFunc(pids, alive) {
		time.Sleep(100 * time.Millisecond)
	}
	for _, pid := range pids {
		if alive(pid) {
			c.logf("SIGKILL %d", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	for _, n := range names {
		os.Remove(c.path("pids", n))
	}
}

// alive reports whether pid runs (a zombie counts as gone).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(b, ')'); i > 0 && i+2 < len(b) {
		return b[i+2] != 'Z'
	}
	return true
}

// ours reports whether pid's command line names this cluster's directory or binaries: a PID file
// is trusted only while the process it names is still the one it was written for.
func (c *cluster) ours(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && (bytes.Contains(b, []byte(c.dir)) || bytes.Contains(b, []byte(c.bin)))
}

// leftovers returns the PIDs of processes of this cluster still running: the components, the
// containerd shims (their command line names our socket) and the containers (in a kubepods cgroup).
func (c *cluster) leftovers() []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self || !alive(pid) {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		if bytes.Contains(cmdline, []byte(c.socket())) || bytes.Contains(cg, []byte("/kubepods")) ||
			(bytes.Contains(cmdline, []byte(c.dir+"/")) && !bytes.Contains(cmdline, []byte("k8s-check-harness"))) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// down stops everything the cluster runs, by PID, and restores the host: it unmounts what the
// kubelet and containerd mounted, deletes the bridge, the kubelet's cgroups and iptables chains and
// the CNI result cache, and writes back the sysctls. It is idempotent and runs as well from another
// process (k8s-check-harness down DIR) after a crash. It returns what it could not undo.
func (c *cluster) down() error {
	start := time.Now()
	var problems []string
	// The kubelet and controllers first (nothing restarts containers after this), then the API
	// server, which still needs etcd while it shuts down, then etcd.
	c.stop("kubelet", "kube-controller-manager", "kube-scheduler")
	c.stop("kube-apiserver")
	c.stop("etcd")
	// Every pod sandbox through the CRI: stops the containers, runs CNI DEL, unmounts.
	if pid := readPID(c.path("pids", "containerd")); pid > 0 && alive(pid) {
		cmd := exec.Command(c.bin+"/crictl", "--config", c.path("crictl.yaml"), "rmp", "-a", "-f")
		if out, err := cmd.CombinedOutput(); err != nil {
			c.logf("crictl rmp -a -f: %v: %s", err, out)
		}
	}
	c.stop("containerd")
	for _, pid := range c.leftovers() {
		c.logf("killing leftover process %d", pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	time.Sleep(200 * time.Millisecond)
	if left := c.leftovers(); len(left) > 0 {
		problems = append(problems, fmt.Sprintf("processes still running: %v", left))
	}
	// Mounts under the directory, deepest first; a busy one lazily.
	mounts := c.mounts()
	sort.Sort(sort.Reverse(sort.StringSlice(mounts)))
	for _, m := range mounts {
		if err := syscall.Unmount(m, 0); err != nil {
			_ = syscall.Unmount(m, syscall.MNT_DETACH)
		}
	}
	if m := c.mounts(); len(m) > 0 {
		problems = append(problems, fmt.Sprintf("still mounted: %v", m))
	}
	if _, err := os.Stat("/sys/class/net/" + bridgeName); err == nil {
		if out, err := exec.Command("ip", "link", "del", bridgeName).CombinedOutput(); err != nil {
			problems = append(problems, fmt.Sprintf("ip link del %s: %v: %s", bridgeName, err, out))
		}
	}
	results, _ := filepath.Glob("/var/lib/cni/results/k8s-check-*")
	for _, r := range results {
		os.Remove(r)
	}
	os.Remove("/var/lib/cni/results") // only if empty
	os.Remove("/var/lib/cni")
	before := func(name string) []string {
		b, _ := os.ReadFile(c.path("host", name))
		return strings.Split(string(b), "\n")
	}
	// The kubelet's cgroups, deepest first, unless they were there before.
	keepCgroups := before("cgroups")
	for _, root := range kubeCgroups() {
		if slices.Contains(keepCgroups, root) {
			continue
		}
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			os.Remove(dirs[i])
		}
		if _, err := os.Stat(root); err == nil {
			problems = append(problems, "cgroup left: "+root)
		}
	}
	// iptables: the jumps into the KUBE-* chains the kubelet made, then the chains.
	keepChains := before("chains")
	for _, chain := range kubeChains() {
		if slices.Contains(keepChains, chain) {
			continue
		}
		f := strings.Fields(chain)
		tool, table, name := f[0], f[1], f[2]
		out, _ := exec.Command(tool, "-w", "-t", table, "-S").Output()
		for _, rule := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(rule, "-A ") && strings.HasSuffix(rule, "-j "+name) && !strings.HasPrefix(rule, "-A KUBE-") {
				args := append([]string{"-w", "-t", table, "-D"}, strings.Fields(strings.TrimPrefix(rule, "-A "))...)
				_ = exec.Command(tool, args...).Run()
			}
		}
		_ = exec.Command(tool, "-w", "-t", table, "-F", name).Run()
	}
	for _, chain := range kubeChains() {
		if slices.Contains(keepChains, chain) {
			continue
		}
		f := strings.Fields(chain)
		if out, err := exec.Command(f[0], "-w", "-t", f[1], "-X", f[2]).CombinedOutput(); err != nil {
			problems = append(problems, fmt.Sprintf("%s -t %s -X %s: %v: %s", f[0], f[1], f[2], err, out))
		}
	}
	// The sysctls, as they were.
	if saved, err := os.Open(c.path("host", "sysctl")); err == nil {
		s := bufio.NewScanner(saved)
		for s.Scan() {
			k, v, ok := strings.Cut(s.Text(), "=")
			if !ok {
				continue
			}
			p := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
			if cur, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(cur)) != v {
				if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
					problems = append(problems, fmt.Sprintf("sysctl %s=%s: %v", k, v, err))
				} else {
					c.logf("restored sysctl %s=%s (was %s)", k, v, strings.TrimSpace(string(cur)))
				}
			}
		}
		saved.Close()
	}
	c.logf("down in %.1fs", time.Since(start).Seconds())
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// mounts returns the mount points under the cluster's directory.
func (c *cluster) mounts() []string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var ms []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && strings.HasPrefix(f[4], c.dir+"/") {
			ms = append(ms, f[4])
		}
	}
	return ms
}

// memory returns the RSS and PSS, in MiB, of every process of the cluster: components, shims,
// pause and containers.
func (c *cluster) memory() (rss, pss int, n int) {
	for _, pid := range c.leftovers() {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
		if err != nil {
			continue
		}
		n++
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) < 2 {
				continue
			}
			kb, _ := strconv.Atoi(f[1])
			switch f[0] {
			case "Rss:":
				rss += kb
			case "Pss:":
				pss += kb
			}
		}
	}
	return rss / 1024, pss / 1024, n
}

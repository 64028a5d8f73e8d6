// Command reader stands in for a pod's main container in .ci/k8s-check: the images of the shipped
// examples' third-party apps (densify/container-optimization-data-forwarder:4, example.com/my-app)
// are this program, with its arguments as the image's default command, so that the manifests run
// unchanged. It reads the token file the init container (or sidecar) wrote, as whatever user the
// pod runs it, and checks it the way a consumer depends on it: a regular file holding one JWT whose
// "aud" is the resource and whose "exp" is in the future (or, for BEARER_TOKEN_FORMAT json, a JSON
// object whose access_token is that JWT and whose expires_on is its exp). It prints one line per read, with the
// file's mode and owner, its user, the claims that matter and a short hash to tell tokens apart
// (never the token), and exits 0 only if every read was good.
//
//	reader [-file PATH] -audience AUD [-wait DURATION] [-for DURATION -every DURATION]
//	reader -try PATH
//
// Without -file, the path is $PROMETHEUS_OAUTH_TOKEN, where the Densify forwarder finds it. With
// -wait, it first waits up to DURATION for a valid token to appear. With -for, it keeps reading every
// -every until DURATION has passed (a sidecar's renewals), and reports how many reads and how many
// distinct tokens it saw. -try only says whether this process can open PATH for reading (for
// kubectl exec: may the app read a credential?), and exits 0 if it can.
package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
)

func main() {
	file := flag.String("file", "", "token file")
	audience := flag.String("audience", "", "expected aud")
	dur := flag.Duration("for", 0, "keep reading this long")
	every := flag.Duration("every", time.Second, "interval between reads")
	wait := flag.Duration("wait", 0, "wait this long for the first valid token")
	try := flag.String("try", "", "only try to open this file for reading")
	flag.Parse()
	if *try != "" {
		f, err := os.Open(*try)
		if err != nil {
			fmt.Printf("reader: uid=%d gid=%d groups=%v cannot read %s: %v\n", os.Getuid(), os.Getgid(), groups(), *try, err)
			os.Exit(1)
		}
		n, err := f.Read(make([]byte, 16))
		f.Close()
		fmt.Printf("reader: uid=%d gid=%d groups=%v read %d bytes of %s (err %v)\n", os.Getuid(), os.Getgid(), groups(), n, *try, err)
		return
	}
	if *file == "" {
		*file = os.Getenv("PROMETHEUS_OAUTH_TOKEN")
	}
	// What the container's securityContext gave this process, as the kernel sees it.
	fmt.Printf("reader: uid=%d gid=%d %s rootfs=%s\n", os.Getuid(), os.Getgid(), status(), rootfs())
	start := time.Now()
	for *wait > 0 {
		if _, err := read(*file, *audience); err == nil {
			fmt.Printf("reader: the first valid token after %v\n", time.Since(start).Round(100*time.Millisecond))
			break
		} else if time.Since(start) > *wait {
			fmt.Printf("reader: no valid token within %v: %v\n", *wait, err)
			os.Exit(1)
		}
		time.Sleep(100 * time.Millisecond)
	}
	deadline := time.Now().Add(*dur)
	seen := map[string]bool{}
	reads := 0
	for {
		id, err := read(*file, *audience)
		reads++
		if err != nil {
			msg := fmt.Sprintf("reader: uid=%d gid=%d read %d of %s: BAD: %v", os.Getuid(), os.Getgid(), reads, *file, err)
			fmt.Println(msg)
			// Where Kubernetes reads the termination message (lastState.terminated.message): it
			// outlives the container's log.
			_ = os.WriteFile("/dev/termination-log", []byte(msg), 0o644)
			os.Exit(1)
		}
		if !seen[id] || *dur == 0 {
			fmt.Printf("reader: uid=%d gid=%d read %d: %s\n", os.Getuid(), os.Getgid(), reads, id)
		}
		seen[id] = true
		if !time.Now().Before(deadline) {
			break
		}
		time.Sleep(*every)
	}
	fmt.Printf("reader: OK: %d reads, %d distinct tokens, 0 bad\n", reads, len(seen))
}

func groups() []int {
	g, _ := os.Getgroups()
	return g
}

// status returns the NoNewPrivs, Seccomp (2: a filter) and CapEff lines of /proc/self/status.
func status() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "status=" + err.Error()
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(l, ":")
		switch k {
		case "NoNewPrivs", "Seccomp", "CapEff":
			out = append(out, k+"="+strings.TrimSpace(v))
		}
	}
	return strings.Join(out, " ")
}

// rootfs returns "read-only" if the root file system refuses a new file, else "writable".
func rootfs() string {
	f, err := os.Create("/.reader-probe")
	if err == nil {
		f.Close()
		os.Remove("/.reader-probe")
		return "writable"
	}
	if errors.Is(err, syscall.EROFS) {
		return "read-only"
	}
	return "unknown (" + err.Error() + ")"
}

// read returns a description of the token at path, or why it is not a usable token for audience.
func read(path, audience string) (string, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("not a regular file: %v", fi.Mode())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	token, format := b, "token"
	if len(b) > 0 && b[0] == '{' {
		// BEARER_TOKEN_FORMAT json: {"access_token","token_type","expires_on","resource"}; its
		// expires_on must agree with the token's exp.
		var v struct {
			AccessToken string `json:"access_token"`
			ExpiresOn   int64  `json:"expires_on"`
		}
		if err := json.Unmarshal(b, &v); err != nil {
			return "", fmt.Errorf("not a JSON token file: %v", err)
		}
		token, format = []byte(v.AccessToken), fmt.Sprintf("json expires_on=%d", v.ExpiresOn)
	}
	parts := strings.Split(string(token), ".")
	if len(token) == 0 || len(parts) != 3 || strings.ContainsAny(string(token), " \n\r\t") {
		return "", fmt.Errorf("not one JWT (%d bytes)", len(token))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", fmt.Errorf("payload: %v", err)
	}
	var claims struct {
		Aud string  `json:"aud"`
		Exp float64 `json:"exp"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return "", fmt.Errorf("claims: %v", err)
	}
	if strings.TrimSuffix(claims.Aud, "/") != strings.TrimSuffix(audience, "/") {
		return "", fmt.Errorf("aud %q, want %q", claims.Aud, audience)
	}
	exp := time.Unix(int64(claims.Exp), 0)
	if !exp.After(time.Now()) {
		return "", fmt.Errorf("expired at %s", exp.UTC().Format(time.RFC3339))
	}
	if format != "token" && format != fmt.Sprintf("json expires_on=%d", int64(claims.Exp)) {
		return "", fmt.Errorf("%s, but the token's exp is %d", format, int64(claims.Exp))
	}
	st := fi.Sys().(*syscall.Stat_t)
	sum := sha256.Sum256(b)
	return fmt.Sprintf("mode %v owner %d:%d, %d bytes, aud=%s, exp=%s, sha256:%x, format %s",
		fi.Mode().Perm(), st.Uid, st.Gid, len(b), claims.Aud, exp.UTC().Format(time.RFC3339), sum[:6], format), nil
}

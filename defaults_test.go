package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// logShape returns each line of a text log as its level, message and keys, without the values, which
// vary from run to run.
func logShape(out string) []string {
	key := regexp.MustCompile(`(?:^| )([a-z_]+)=`)
	var lines []string
	for line := range strings.Lines(out) {
		msg := regexp.MustCompile(`msg="[^"]*"|msg=\S+`).FindString(line)
		rest := strings.Replace(line, msg, "", 1)
		rest = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`).ReplaceAllString(rest, `""`)
		var keys []string
		for _, m := range key.FindAllStringSubmatch(rest, -1) {
			keys = append(keys, m[1])
		}
		lines = append(lines, msg+" "+strings.Join(keys, ","))
	}
	return lines
}

// TestDefaultsUnchanged: a pod that sets only the variables of the version before formats, several
// resources and metrics gets what it got then: the bare token, byte for byte, as the only file; the
// same log lines with the same keys; and in refresh mode no listening socket at all.
func TestDefaultsUnchanged(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	out, err := f.run(t.Context())
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	reqs := f.srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	got := f.readToken()
	if strings.HasSuffix(got, "\n") || strings.Count(got, ".") != 2 || !strings.HasPrefix(got, "eyJ") {
		t.Errorf("token file is not the bare token: %d bytes, ending %q", len(got), got[max(0, len(got)-3):])
	}
	if diff := cmp.Diff([]string{"token"}, f.dirEntries()); diff != "" {
		t.Errorf("token directory (-want +got):\n%s", diff)
	}
	want := []string{ // as printed before formats, resources and metrics existed
		`msg="requesting access token" time,level,version,display_name,client_id,resource,tenant,credential,token_endpoint,proxy,mode,replace`,
		`msg="wrote access token" time,level,display_name,client_id,resource,audience,expires,file,mode`,
	}
	if diff := cmp.Diff(want, logShape(out)); diff != "" {
		t.Errorf("log lines (-want +got):\n%s\n%s", diff, out)
	}
}

// TestDefaultsNoPort runs the built program in refresh mode with only the variables of before: it
// holds no listening socket, and logs what it logged before. With BEARER_TOKEN_METRICS_ADDR it holds
// exactly one (the same count, the check can fail).
func TestDefaultsNoPort(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the program")
	}
	t.Parallel()
	bin := buildProgram(t)
	for _, tc := range []struct {
		name      string
		metrics   bool
		listening int
		log       []string
	}{
		{"defaults", false, 0, []string{
			`msg="requesting access token" time,level,version,display_name,client_id,resource,tenant,credential,token_endpoint,proxy,mode,replace`,
			`msg="wrote access token" time,level,display_name,client_id,resource,audience,expires,file,mode`,
			`msg="keeping the access token fresh" time,level,expires,next_renewal`,
			`msg="stopping; the token file stays in place" time,level,cause,expires`,
		}},
		{"BEARER_TOKEN_METRICS_ADDR", true, 1, []string{
			`msg="serving metrics" time,level,address,path`,
			`msg="requesting access token" time,level,version,display_name,client_id,resource,tenant,credential,token_endpoint,proxy,mode,replace`,
			`msg="wrote access token" time,level,display_name,client_id,resource,audience,expires,file,mode`,
			`msg="keeping the access token fresh" time,level,expires,next_renewal`,
			`msg="stopping; the token file stays in place" time,level,cause,expires`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			env := []string{"SSL_CERT_FILE=" + os.Getenv("SSL_CERT_FILE"), "BEARER_TOKEN_REFRESH=true"}
			if tc.metrics {
				env = append(env, "BEARER_TOKEN_METRICS_ADDR=127.0.0.1:0")
			}
			for k, v := range f.env {
				env = append(env, k+"="+v)
			}
			cmd := exec.Command(bin)
			cmd.Env = env
			var out bytes.Buffer
			lw := &logWriter{b: &out}
			cmd.Stdout = lw
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(30 * time.Second)
			for !strings.Contains(readLog(lw), "keeping the access token fresh") {
				if time.Now().After(deadline) {
					_ = cmd.Process.Kill()
					t.Fatalf("no first token after 30 s:\n%s", readLog(lw))
				}
				time.Sleep(10 * time.Millisecond)
			}
			n := listeningSockets(t, cmd.Process.Pid)
			_ = cmd.Process.Signal(syscall.SIGTERM)
			if err := cmd.Wait(); err != nil {
				t.Errorf("exit: %v", err)
			}
			if n != tc.listening {
				t.Errorf("%d listening sockets, want %d", n, tc.listening)
			}
			if diff := cmp.Diff(tc.log, logShape(out.String())); diff != "" {
				t.Errorf("log lines (-want +got):\n%s\n%s", diff, out.String())
			}
			if diff := cmp.Diff([]string{"token"}, f.dirEntries()); diff != "" {
				t.Errorf("token directory (-want +got):\n%s", diff)
			}
		})
	}
}

// readLog reads what w holds so far.
func readLog(w *logWriter) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// listeningSockets returns how many TCP sockets in the LISTEN state the process pid holds: its socket
// file descriptors matched by inode against /proc/net/tcp and tcp6.
func listeningSockets(t *testing.T, pid int) int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join(fmt.Sprintf("/proc/%d/fd", pid), fd.Name())); err == nil {
			if inode, ok := strings.CutPrefix(target, "socket:["); ok {
				inodes[strings.TrimSuffix(inode, "]")] = true
			}
		}
	}
	n := 0
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) > 9 && fields[3] == "0A" && inodes[fields[9]] {
				n++
			}
		}
	}
	return n
}

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"

	"github.com/densify-dev/azure-rest-api-token/internal/entratest"
)

// TestCancel cancels the run, as SIGTERM does, while Entra has not answered yet and while the run waits
// out a Retry-After: the run stops at once, long before the answer or the wait, and leaves nothing
// behind.
func TestCancel(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		entra entratest.Response
		after time.Duration // from the first request to the cancellation
	}{
		{"mid-request", entratestHang(), 0},
		{"during a Retry-After wait", entratest.Response{Status: 429, Header: map[string]string{"Retry-After": "60"}}, 100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.srv.Enqueue(tc.entra)
			ctx, cancel := context.WithCancelCause(t.Context())
			go func() {
				for len(f.srv.Requests()) == 0 {
					time.Sleep(5 * time.Millisecond)
				}
				time.Sleep(tc.after)
				cancel(errors.New("signal: terminated"))
			}()
			start := time.Now()
			out, err := f.run(ctx)
			f.checkNoSecrets(out)
			if got := exitStatus(err); got != exitRequest {
				t.Errorf("exit status = %d, want %d (error: %v)", got, exitRequest, err)
			}
			if !strings.Contains(out, "signal: terminated") {
				t.Errorf("output does not give the cause:\n%s", out)
			}
			if elapsed := time.Since(start); elapsed > 30*time.Second {
				t.Errorf("run went on for %v after cancellation, as if it waited for Entra", elapsed)
			}
			if got := len(f.srv.Requests()); got != 1 {
				t.Errorf("%d requests, want 1", got)
			}
			if diff := cmp.Diff([]string(nil), f.dirEntries()); diff != "" {
				t.Errorf("token directory after cancellation (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRace runs two programs for one token file at once: exactly one writes it, whole, and the other
// fails with exit status 11 or 1, leaving no temporary file.
func TestRace(t *testing.T) {
	t.Parallel()
	for i := range 10 {
		f := newFixture(t)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for j := range errs {
			wg.Go(func() { _, errs[j] = f.run(t.Context()) })
		}
		wg.Wait()
		var codes []int
		for _, err := range errs {
			codes = append(codes, exitStatus(err))
		}
		won := 0
		for _, c := range codes {
			switch c {
			case 0:
				won++
			case exitWrite, exitConfig: // lost at link(2), or saw the winner's file before starting
			default:
				t.Errorf("round %d: exit status %d", i, c)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: exit statuses %v, want exactly one 0 (errors %v)", i, codes, errs)
		}
		checkTokenFile(t, f, 0o644)
	}
}

// TestUmask shows the mode comes from BEARER_TOKEN_FILE_MODE whatever the umask. The umask is the
// process's, so this test must not run in parallel with others.
func TestUmask(t *testing.T) {
	f := newFixture(t)
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	out, err := f.run(t.Context())
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	checkTokenFile(t, f, 0o644)
}

// TestReadOnlyDirectory shows a read-only token directory (a volume mounted readOnly) fails the run
// with exit status 11 before any request. As root, which ignores permission bits, the directory is
// made read-only with a read-only bind mount of the test's own directory onto itself (not in a mount
// namespace of the test's thread: run does the job in a goroutine of its own, on another thread).
func TestReadOnlyDirectory(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if os.Geteuid() == 0 {
		if err := syscall.Mount(f.tokenDir, f.tokenDir, "", syscall.MS_BIND, ""); err != nil {
			t.Skipf("cannot bind-mount to make a directory read-only as root: %v", err)
		}
		t.Cleanup(func() { _ = syscall.Unmount(f.tokenDir, 0) }) // before t.TempDir's removal
		if err := syscall.Mount("", f.tokenDir, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
			t.Fatal(err)
		}
	} else if err := os.Chmod(f.tokenDir, 0o555); err != nil {
		t.Fatal(err)
	}
	out, err := f.run(t.Context())
	f.checkNoSecrets(out)
	if got := exitStatus(err); got != exitWrite {
		t.Errorf("exit status = %d, want %d (error: %v)", got, exitWrite, err)
	}
	// What to change in the pod (issue 14, item 11): as root the cause is EROFS, otherwise EACCES.
	want := "read-only file system: with readOnlyRootFilesystem (or a volume mounted readOnly) nothing can be written there: mount a writable emptyDir at"
	if os.Geteuid() != 0 {
		want = "permission denied: this program runs as uid"
	}
	if !strings.Contains(out, want) {
		t.Errorf("output does not hold %q:\n%s", want, out)
	}
	if got := len(f.srv.Requests()); got != 0 {
		t.Errorf("%d requests, want 0", got)
	}
	if diff := cmp.Diff([]string(nil), f.dirEntries()); diff != "" {
		t.Errorf("token directory (-want +got):\n%s", diff)
	}
}

// TestPublishAfterCancel shows a token that arrives after the run was cancelled is not published.
func TestPublishAfterCancel(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	target := filepath.Join(dir, "token")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := writeTokenFile(ctx, target, 0o644, "x.y.z", false); err == nil {
		t.Error("publish after cancel succeeded")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("left %d files behind", len(entries))
	}
}

// TestWriteTokenFile publishes by link and by rename, onto nothing and onto an old file: link never
// replaces, rename does; either way the file has exactly the token and the mode, and nothing else is
// left in the directory.
func TestWriteTokenFile(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		replace  bool
		old      string // content of a file already at the target; "" for none
		wantErr  string // "" for success
		wantFile string // what the target holds afterwards
	}{
		{name: "link onto nothing", wantFile: "new.token"},
		{name: "link onto a file", old: "old.token", wantErr: "another run wrote it", wantFile: "old.token"},
		{name: "rename onto nothing", replace: true, wantFile: "new.token"},
		{name: "rename onto a file", replace: true, old: "old.token", wantFile: "new.token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			target := filepath.Join(dir, "token")
			if tc.old != "" {
				mustDo(t, os.WriteFile(target, []byte(tc.old), 0o600))
			}
			err := writeTokenFile(t.Context(), target, 0o640, "new.token", tc.replace)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("writeTokenFile: %v, want error %q", err, tc.wantErr)
			}
			got, _ := os.ReadFile(target)
			if diff := cmp.Diff(tc.wantFile, string(got)); diff != "" {
				t.Errorf("token file (-want +got):\n%s", diff)
			}
			if wantMode := map[bool]os.FileMode{true: 0o640, false: 0o600}[tc.wantErr == ""]; fileMode(t, target) != wantMode {
				t.Errorf("mode %04o, want %04o", fileMode(t, target), wantMode)
			}
			if diff := cmp.Diff([]string{"token"}, dirNames(t, dir)); diff != "" {
				t.Errorf("directory (-want +got):\n%s", diff)
			}
		})
	}
}

// TestWriteLeavesNoNamedCopy watches the token directory with inotify while the token is written, by
// link and by rename: no name but the target's is ever created and then written to, so that a process
// killed mid-write (SIGKILL, out of memory) cannot leave a copy of the token behind. With a named
// temporary file, as before O_TMPFILE, that name is created and then modified.
func TestWriteLeavesNoNamedCopy(t *testing.T) {
	t.Parallel()
	for _, replace := range []bool{false, true} {
		dir := t.TempDir()
		target := filepath.Join(dir, "token")
		events := watchDir(t, dir, func() {
			mustDo(t, writeTokenFile(t.Context(), target, 0o644, "x.y.z", replace))
		})
		// An O_TMPFILE file's events carry a pseudo-name ("#inode") that no directory entry has: only the
		// names created in the directory count.
		named := map[string]bool{}
		for _, e := range events {
			if e.mask&(syscall.IN_CREATE|syscall.IN_MOVED_TO) != 0 {
				named[e.name] = true
			}
			if named[e.name] && e.name != "token" && e.mask&(syscall.IN_MODIFY|syscall.IN_CLOSE_WRITE) != 0 {
				t.Errorf("replace=%v: %q was written to while it had a name (events %v)", replace, e.name, events)
				break
			}
		}
		if !slices.ContainsFunc(events, func(e inotifyEvent) bool { return e.name == "token" }) {
			t.Errorf("replace=%v: no event for the token file: the watch saw nothing (%v)", replace, events)
		}
	}
}

type inotifyEvent struct {
	name string
	mask uint32
}

// watchDir returns the inotify events for dir's entries while do runs.
func watchDir(t *testing.T, dir string, do func()) []inotifyEvent {
	t.Helper()
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		t.Skipf("no inotify: %v", err)
	}
	defer syscall.Close(fd)
	if _, err := syscall.InotifyAddWatch(fd, dir, syscall.IN_ALL_EVENTS); err != nil {
		t.Fatal(err)
	}
	do()
	var events []inotifyEvent
	buf := make([]byte, 64<<10)
	for {
		n, err := syscall.Read(fd, buf)
		if err != nil || n <= 0 {
			break
		}
		for off := 0; off+syscall.SizeofInotifyEvent <= n; {
			e := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := string(bytes.TrimRight(buf[off+syscall.SizeofInotifyEvent:off+syscall.SizeofInotifyEvent+int(e.Len)], "\x00"))
			events = append(events, inotifyEvent{name, e.Mask})
			off += syscall.SizeofInotifyEvent + int(e.Len)
		}
	}
	return events
}

// dirNames returns the names in dir.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestReplaceNeverMissing replaces the token file over and over while a reader reads it in a tight
// loop: the reader never finds it missing, empty or partial.
func TestReplaceNeverMissing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	target := filepath.Join(dir, "token")
	tokens := []string{strings.Repeat("a", 3000), strings.Repeat("b", 5000)}
	mustDo(t, writeTokenFile(t.Context(), target, 0o644, tokens[0], true))
	done := make(chan struct{})
	var reads, bad int
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			got, err := os.ReadFile(target)
			reads++
			if err != nil || !slices.Contains(tokens, string(got)) {
				bad++
				t.Errorf("read %d: %d bytes, error %v", reads, len(got), err)
			}
		}
	})
	const writes = 100
	for i := range writes {
		mustDo(t, writeTokenFile(t.Context(), target, 0o644, tokens[i%2], true))
	}
	close(done)
	wg.Wait()
	t.Logf("%d replacements, %d reads, %d bad", writes, reads, bad)
	if diff := cmp.Diff([]string{"token"}, dirNames(t, dir)); diff != "" {
		t.Errorf("directory (-want +got):\n%s", diff)
	}
}

// TestLongFileName writes a token file whose name has 255 bytes, the most Linux allows: the probe and
// temporary names must not grow from it.
func TestLongFileName(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.env["BEARER_TOKEN_FILE"] = filepath.Join(f.tokenDir, strings.Repeat("t", 255))
	out, err := f.run(t.Context())
	f.checkNoSecrets(out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	if diff := cmp.Diff([]string{strings.Repeat("t", 255)}, f.dirEntries()); diff != "" {
		t.Errorf("token directory (-want +got):\n%s", diff)
	}
}

// TestNoHardLinks runs with the token directory on exFAT, a file system without hard links (mounted
// with the FUSE driver from a loop device, as this machine has no vfat module): the run fails before
// any request, exit status 11, naming the cause. Publishing by rename works there, and that probe
// passes. exFAT has no O_TMPFILE either, so this also covers the named temporary file.
func TestNoHardLinks(t *testing.T) {
	t.Parallel()
	dir := mountExfat(t)
	f := newFixture(t)
	f.tokenDir = dir
	f.env["BEARER_TOKEN_FILE"] = filepath.Join(dir, "token")
	out, err := f.run(t.Context())
	f.checkNoSecrets(out)
	if got := exitStatus(err); got != exitWrite {
		t.Errorf("exit status = %d, want %d (error: %v)", got, exitWrite, err)
	}
	if err == nil || !strings.Contains(err.Error(), "does not support hard links") {
		t.Errorf("error %v does not name the cause", err)
	}
	if got := len(f.srv.Requests()); got != 0 {
		t.Errorf("%d requests, want 0", got)
	}
	if diff := cmp.Diff([]string(nil), f.dirEntries()); diff != "" {
		t.Errorf("token directory (-want +got):\n%s", diff)
	}

	target := filepath.Join(dir, "token")
	mustDo(t, checkTokenDir(target, true))
	for _, token := range []string{"first", "second"} {
		mustDo(t, writeTokenFile(t.Context(), target, 0o644, token, true))
		got, _ := os.ReadFile(target)
		if diff := cmp.Diff(token, string(got)); diff != "" {
			t.Errorf("token file (-want +got):\n%s", diff)
		}
	}
	if diff := cmp.Diff([]string{"token"}, dirNames(t, dir)); diff != "" {
		t.Errorf("directory (-want +got):\n%s", diff)
	}
}

// mountExfat returns an empty directory on a new exFAT file system, mounted for the test, or skips the
// test where that cannot be done (not root, no loop device, no exfatprogs or exfat-fuse).
func mountExfat(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting exFAT needs root")
	}
	for _, tool := range []string{"losetup", "mkfs.exfat", "mount.exfat-fuse"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s (apt-get install exfatprogs exfat-fuse)", tool)
		}
	}
	tmp := t.TempDir()
	img, dir := filepath.Join(tmp, "exfat.img"), filepath.Join(tmp, "mnt")
	mustDo(t, os.Mkdir(dir, 0o755))
	mustDo(t, os.WriteFile(img, nil, 0o600))
	mustDo(t, os.Truncate(img, 8<<20))
	if out, err := exec.Command("mkfs.exfat", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.exfat: %v\n%s", err, out)
	}
	loop, err := exec.Command("losetup", "--find", "--show", img).Output()
	if err != nil {
		t.Skipf("no loop device: %v", err)
	}
	dev := strings.TrimSpace(string(loop))
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", dev).Run() })
	if out, err := exec.Command("mount.exfat-fuse", dev, dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount exFAT: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount: %v\n%s", err, out)
		}
	})
	return dir
}

// TestKilledMidWrite runs the built program under strace, which makes every fsync(2) take 1.5 s, and
// kills it with SIGKILL while it flushes the token to disk: no file is left, in particular no named
// temporary file holding the token, as there was before O_TMPFILE.
func TestKilledMidWrite(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	if _, err := exec.LookPath("strace"); err != nil {
		t.Skip("no strace (apt-get install strace)")
	}
	f := newFixture(t)
	cmd := exec.Command("strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=fsync", "-e", "inject=fsync:delay_enter=1500000", bin)
	cmd.Env = []string{"SSL_CERT_FILE=" + os.Getenv("SSL_CERT_FILE")}
	for k, v := range f.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	mustDo(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for deadline := time.Now().Add(30 * time.Second); len(f.srv.Requests()) == 0; { // the probe's two fsyncs first
		select {
		case err := <-exited:
			t.Skipf("strace cannot trace here (%v):\n%s", err, out.String())
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			t.Fatalf("no request after 30 s:\n%s", out.String())
		}
	}
	time.Sleep(750 * time.Millisecond) // into the token file's fsync
	children, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
	mustDo(t, err)
	pid, err := strconv.Atoi(strings.Fields(string(children))[0])
	mustDo(t, err)
	mustDo(t, syscall.Kill(pid, syscall.SIGKILL))
	<-exited
	t.Logf("output:\n%s", out.String())
	if strings.Contains(out.String(), "wrote access token") {
		t.Fatal("the program finished before it was killed: the test proves nothing")
	}
	if diff := cmp.Diff([]string(nil), f.dirEntries()); diff != "" {
		t.Errorf("token directory after SIGKILL mid-write (-want +got):\n%s", diff)
	}
}

// TestPermissionHints: a permission error says which user the program runs as and what to change in
// the pod (fsGroup, a Secret's defaultMode, an emptyDir); as root a test cannot meet one for real.
func TestPermissionHints(t *testing.T) {
	t.Parallel()
	ids := fmt.Sprintf("this program runs as uid %d, gid %d", os.Getuid(), os.Getgid())
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"read", readHint(syscall.EACCES), "permission denied: " + ids + ": give the pod securityContext.fsGroup: " + strconv.Itoa(os.Getgid()) + ", which makes a Secret's files readable by that group (with defaultMode 0440), or a defaultMode such as 0444"},
		{"read, other cause", readHint(syscall.EIO), "input/output error"},
		{"directory", dirHint("/var/run/azure-token", syscall.EACCES), "permission denied: " + ids + ", which may not write there: mount an emptyDir at \"/var/run/azure-token\" (writable by every user), or give the pod securityContext.fsGroup: " + strconv.Itoa(os.Getgid())},
		{"directory, read-only", dirHint("/var/run", syscall.EROFS), "read-only file system: with readOnlyRootFilesystem (or a volume mounted readOnly) nothing can be written there: mount a writable emptyDir at \"/var/run\""},
		{"no hard links", dirHint("/mnt", fmt.Errorf("%w (link(2): %w)", errNoHardLinks, syscall.EPERM)), "the file system does not support hard links (link(2): operation not permitted)"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

// TestBinaryAsImageUser runs the built program as the image's user, 65532:65532, with a service
// principal file that only root may read (a Secret with defaultMode 0400 and no fsGroup) and then with
// a token directory only root may write: each fails before any request, saying which user it runs as
// and what to change in the pod (issue 14, item 11). It needs root, to switch users.
func TestBinaryAsImageUser(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the program")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the program as 65532")
	}
	t.Parallel()
	bin := buildProgram(t)
	for _, tc := range []struct {
		name  string
		setup func(f *fixture)
		exit  int
		want  string
	}{
		{"unreadable service principal", func(f *fixture) { mustDo(t, os.Chmod(f.spFile, 0o400)) }, exitConfig,
			"reading service principal %q: permission denied: this program runs as uid 65532, gid 65532: give the pod securityContext.fsGroup: 65532"},
		{"unwritable token directory", func(f *fixture) {
			mustDo(t, os.Chmod(f.spFile, 0o444))
			mustDo(t, os.Chmod(f.tokenDir, 0o755))
		}, exitWrite, "creating token file in %q: permission denied: this program runs as uid 65532, gid 65532, which may not write there: mount an emptyDir at"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			// Let 65532 reach the files, as a pod's volumes let it: every directory on the way traversable.
			for _, d := range []string{filepath.Dir(bin), filepath.Dir(os.Getenv("SSL_CERT_FILE")), f.dir, filepath.Dir(f.dir)} {
				mustDo(t, os.Chmod(d, 0o755))
			}
			tc.setup(f)
			cmd := exec.Command(bin)
			cmd.Env = []string{"SSL_CERT_FILE=" + os.Getenv("SSL_CERT_FILE")}
			for k, v := range f.env {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65532, Gid: 65532}}
			out, err := cmd.Output()
			t.Logf("output:\n%s", out)
			f.checkNoSecrets(string(out))
			if ee, ok := errors.AsType[*exec.ExitError](err); !ok || ee.ExitCode() != tc.exit {
				t.Errorf("exit: %v, want status %d", err, tc.exit)
			}
			path := f.spFile
			if tc.exit == exitWrite {
				path = f.tokenDir
			}
			if want := strings.ReplaceAll(fmt.Sprintf(tc.want, path), `"`, `\"`); !strings.Contains(string(out), want) {
				t.Errorf("output does not hold %q", want)
			}
			if n := len(f.srv.Requests()); n != 0 {
				t.Errorf("%d requests, want 0", n)
			}
		})
	}
}

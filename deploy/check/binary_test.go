package check

import (
	"bufio"
	"context"
	"debug/elf"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// repoRoot is the root of the scriptgen repository (deploy/check/../..).
var repoRoot = func() string {
	abs, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		panic(err)
	}
	return abs
}()

// deployPath names a file under deploy/.
func deployPath(elem ...string) string {
	return filepath.Join(append([]string{repoRoot, "deploy"}, elem...)...)
}

// stopWait is runner.StopWait: how long a stopping serve or worker waits for
// the releases of the jobs it cut short after DRAIN_TIMEOUT (the check is a
// module of its own and cannot import scriptgen's internal packages).
const stopWait = 15 * time.Second

// binVersion is what the check stamps through the Dockerfile's VERSION.
const binVersion = "v0.0.0-deploycheck"

var (
	binPath string // the binary built by the Dockerfile's go build line
	binErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "deploycheck")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "scriptgen")
	binErr = buildAsTheDockerfileDoes(binPath)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// binary returns the built binary, or fails the test with the build's error.
func binary(t *testing.T) string {
	t.Helper()
	if binErr != nil {
		t.Fatalf("the Dockerfile's go build line failed: %v", binErr)
	}
	return binPath
}

// settings are the environment variables `scriptgen serve --help` documents:
// every setting the binary reads.
func settings(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command(binary(t), "serve", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("scriptgen serve --help: %v\n%s", err, out)
	}
	var names []string
	for _, m := range regexp.MustCompile(`\$([A-Z][A-Z0-9_]*)`).FindAllStringSubmatch(string(out), -1) {
		if !slices.Contains(names, m[1]) {
			names = append(names, m[1])
		}
	}
	if len(names) < 20 {
		t.Fatalf("serve --help documents only %v", names)
	}
	return names
}

// goSettings are Go's own variables, which the binary reads without a flag.
var goSettings = []string{"GOGC", "GOMEMLIMIT", "GOMAXPROCS"}

// checkEnvName fails unless name is a setting of the binary or Go's own.
func checkEnvName(t *testing.T, where, name string, known []string) {
	t.Helper()
	if !slices.Contains(known, name) && !slices.Contains(goSettings, name) {
		t.Errorf("%s: %s is no setting of scriptgen (scriptgen serve --help)", where, name)
	}
}

// checkCommand fails unless args name a command of the binary: its --help
// exits 0.
func checkCommand(t *testing.T, where string, args []string) {
	t.Helper()
	if len(args) == 0 {
		t.Errorf("%s: no command given (the image's default is serve; say which)", where)
		return
	}
	out, err := exec.Command(binary(t), append(slices.Clone(args), "--help")...).CombinedOutput()
	if err != nil {
		t.Errorf("%s: scriptgen %s --help failed (%v): not a command of this build\n%s", where, strings.Join(args, " "), err, out)
	}
}

// checkStatic fails unless the ELF file at path is statically linked: no
// interpreter (the dynamic loader) and no shared library, so that it runs on
// distroless/static or scratch.
func checkStatic(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("%s is not an ELF binary: %v", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has an ELF interpreter: it is dynamically linked (CGO_ENABLED=0 missing?)", path)
		}
		if p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s has a dynamic section", path)
		}
	}
	if libs, err := f.ImportedLibraries(); err == nil && len(libs) > 0 {
		t.Errorf("%s needs shared libraries %v", path, libs)
	}
}

// server is a running `scriptgen serve`.
type server struct {
	cmd  *exec.Cmd
	base string
	done chan error
	log  *strings.Builder
}

// startServe runs `scriptgen serve` with env (a pod's environment) on an
// SQLite file of its own and a free loopback port, and waits until it
// answers.
func startServe(t *testing.T, env map[string]string) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(binary(t), "serve")
	cmd.Dir = t.TempDir()
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + cmd.Dir}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	// Loopback and a file of its own: the pod's address and database are
	// the cluster's.
	cmd.Env = append(cmd.Env, "LISTEN_ADDR="+addr, "DATABASE_URL=sqlite:"+filepath.Join(cmd.Dir, "scriptgen.db"), "REDIS_URL=")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, base: "http://" + addr, done: make(chan error, 1), log: &strings.Builder{}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			s.log.WriteString(sc.Text() + "\n")
		}
	}()
	go func() { <-logDone; s.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-s.done
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get(s.base + "/api/generation/system-info"); err == nil {
			resp.Body.Close()
			return s
		}
		select {
		case err := <-s.done:
			t.Fatalf("scriptgen serve exited before it answered: %v\n%s", err, s.log)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("scriptgen serve did not answer in 30 s\n%s", s.log)
		}
	}
}

// get answers GET path with its status and body.
func (s *server) get(t *testing.T, path string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.base+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		b.WriteString(sc.Text() + "\n")
	}
	return resp.StatusCode, b.String()
}

// stop sends SIGTERM, as the kubelet does after preStop, and fails unless
// the server exits cleanly within grace.
func (s *server) stop(t *testing.T, grace time.Duration) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("scriptgen serve exited with %v after SIGTERM\n%s", err, s.log)
		}
	case <-time.After(grace):
		t.Fatalf("scriptgen serve still runs %s after SIGTERM\n%s", grace, s.log)
	}
}

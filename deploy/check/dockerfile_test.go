package check

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// instruction is one instruction of a Dockerfile: its keyword (upper case)
// and the rest of its line, continuation lines joined.
type instruction struct {
	cmd, args string
}

// parseDockerfile reads the instructions of a Dockerfile. It knows the
// little this check needs: comments, blank lines and backslash
// continuations (the Dockerfile has no heredoc and no other escape).
func parseDockerfile(path string) ([]instruction, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []instruction
	var cur strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if cont, ok := strings.CutSuffix(trimmed, "\\"); ok {
			cur.WriteString(cont + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur.Reset()
	}
	if cur.Len() > 0 {
		return nil, fmt.Errorf("%s ends in a continuation", path)
	}
	return out, nil
}

// goBuildLine is the Dockerfile's RUN line that builds the binary, and the
// default of each ARG before it.
func goBuildLine(instrs []instruction) (line string, args map[string]string, err error) {
	args = map[string]string{}
	for _, in := range instrs {
		switch in.cmd {
		case "ARG":
			name, def, _ := strings.Cut(in.args, "=")
			args[name] = def
		case "RUN":
			if strings.Contains(in.args, "go build") {
				if line != "" {
					return "", nil, fmt.Errorf("two go build lines: %q and %q", line, in.args)
				}
				line = in.args
			}
		}
	}
	if line == "" {
		return "", nil, fmt.Errorf("no RUN … go build line")
	}
	return line, args, nil
}

var outputFlag = regexp.MustCompile(`(\s-o\s+)(\S+)`)

// buildAsTheDockerfileDoes runs the Dockerfile's go build line in the
// repository's root, as the image's build stage does, with only its -o path
// changed to out, and VERSION set to binVersion.
func buildAsTheDockerfileDoes(out string) error {
	instrs, err := parseDockerfile(deployPath("Dockerfile"))
	if err != nil {
		return err
	}
	line, _, err := goBuildLine(instrs)
	if err != nil {
		return err
	}
	if len(outputFlag.FindAllString(line, -1)) != 1 {
		return fmt.Errorf("the go build line %q must have one -o PATH", line)
	}
	line = outputFlag.ReplaceAllString(line, "${1}"+out)
	cmd := exec.Command("sh", "-c", line)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "VERSION="+binVersion)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v\n%s", line, err, b)
	}
	return nil
}

func TestDockerfileBuildsAStaticBinaryForANonRootImage(t *testing.T) {
	bin := binary(t)
	instrs, err := parseDockerfile(deployPath("Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	line, args, err := goBuildLine(instrs)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(line, "CGO_ENABLED=0 ") {
		t.Errorf("the go build line %q does not start with CGO_ENABLED=0", line)
	}
	if args["VERSION"] == "" {
		t.Errorf("ARG VERSION has no default")
	}
	checkStatic(t, bin)
	if out, err := exec.Command(bin, "version").Output(); err != nil || strings.TrimSpace(string(out)) != binVersion {
		t.Errorf("the binary's version is %q (%v), want %q stamped from VERSION", out, err, binVersion)
	}

	// The last stage: a base with no shell or libc needs, the binary copied
	// from the build stage's -o path, a non-root user, the binary as the
	// entry point.
	var last []instruction
	for _, in := range instrs {
		if in.cmd == "FROM" {
			last = nil
		}
		last = append(last, in)
	}
	if base := strings.Fields(last[0].args)[0]; base != "scratch" && !strings.HasPrefix(base, "gcr.io/distroless/static") {
		t.Errorf("the image's base is %s, want distroless/static or scratch", base)
	}
	built := outputFlag.FindStringSubmatch(line)[2]
	var user, copied, entry string
	for _, in := range last {
		switch in.cmd {
		case "USER":
			user = in.args
		case "COPY":
			if f := strings.Fields(in.args); len(f) == 3 && f[0] == "--from=build" && f[1] == built {
				copied = f[2]
			}
		case "ENTRYPOINT":
			entry = in.args
		}
	}
	if u, _, _ := strings.Cut(user, ":"); u == "" || u == "0" || u == "root" {
		t.Errorf("the image's USER is %q: want a non-root user", user)
	}
	if copied == "" {
		t.Fatalf("the last stage does not COPY --from=build %s", built)
	}
	if entry != `["`+copied+`"]` {
		t.Errorf("ENTRYPOINT is %s, want [%q]", entry, copied)
	}
}

package check

import (
	"context"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// loadCompose loads deploy/compose.yaml as `docker compose` does: against
// the Compose specification's schema, variables interpolated from env.
func loadCompose(t *testing.T, env []string) (*types.Project, error) {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{deployPath("compose.yaml")},
		cli.WithEnv(env), cli.WithWorkingDirectory(deployPath()))
	if err != nil {
		t.Fatal(err)
	}
	return opts.LoadProject(context.Background())
}

func TestComposeFileIsValidAndRunsTheStack(t *testing.T) {
	known := settings(t)
	if _, err := loadCompose(t, nil); err == nil || !strings.Contains(err.Error(), "POSTGRES_PASSWORD") {
		t.Errorf("compose.yaml loads without POSTGRES_PASSWORD (%v): it must refuse a default password", err)
	}
	p, err := loadCompose(t, []string{"POSTGRES_PASSWORD=s3cret"})
	if err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	var names []string
	for name := range p.Services {
		names = append(names, name)
	}
	slices.Sort(names)
	if want := []string{"migrate", "postgres", "redis", "serve", "worker"}; !slices.Equal(names, want) {
		t.Fatalf("services %v, want %v", names, want)
	}
	if w := p.Services["worker"]; w.Deploy == nil || w.Deploy.Replicas == nil || *w.Deploy.Replicas != 2 {
		t.Errorf("worker: want deploy.replicas 2")
	}
	for _, name := range []string{"postgres", "redis"} {
		if p.Services[name].HealthCheck == nil {
			t.Errorf("%s has no healthcheck: the others wait for it to be healthy", name)
		}
	}
	for _, name := range []string{"migrate", "serve", "worker"} {
		s := p.Services[name]
		where := "compose service " + name
		if s.Build == nil {
			t.Fatalf("%s: no build", where)
		}
		df := filepath.Join(s.Build.Context, s.Build.Dockerfile)
		if same, err := sameFile(df, deployPath("Dockerfile")); err != nil || !same {
			t.Errorf("%s: builds %s, not deploy/Dockerfile (%v)", where, df, err)
		}
		if !s.ReadOnly {
			t.Errorf("%s: want read_only: the binary writes nothing", where)
		}
		checkCommand(t, where, s.Command)
		env := map[string]string{}
		for k, v := range s.Environment {
			checkEnvName(t, where, k, known)
			if v != nil {
				env[k] = *v
			}
		}
		for key, host := range map[string]string{"DATABASE_URL": "postgres", "REDIS_URL": "redis"} {
			if u, err := url.Parse(env[key]); err != nil || u.Hostname() != host {
				t.Errorf("%s: %s %q does not point at the service %s", where, key, env[key], host)
			}
		}
		if !strings.Contains(env["DATABASE_URL"], ":s3cret@") {
			t.Errorf("%s: DATABASE_URL does not take POSTGRES_PASSWORD", where)
		}
		if name == "migrate" {
			if !slices.Equal(s.Command, types.ShellCommand{"schema"}) || s.Restart != "no" {
				t.Errorf("%s: want command [schema] and restart \"no\"", where)
			}
			if s.DependsOn["postgres"].Condition != types.ServiceConditionHealthy {
				t.Errorf("%s: want to wait for a healthy postgres", where)
			}
			continue
		}
		if s.DependsOn["migrate"].Condition != types.ServiceConditionCompletedSuccessfully || s.DependsOn["redis"].Condition != types.ServiceConditionHealthy {
			t.Errorf("%s: want to wait for the migration to complete and a healthy redis, got %v", where, s.DependsOn)
		}
		drain, err := time.ParseDuration(env["DRAIN_TIMEOUT"])
		if err != nil {
			t.Errorf("%s: DRAIN_TIMEOUT: %v", where, err)
		}
		if s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) < drain+stopWait+time.Second {
			t.Errorf("%s: stop_grace_period %v is below DRAIN_TIMEOUT %s + %s for releases + 1 s", where, s.StopGracePeriod, drain, stopWait)
		}
		if name == "serve" {
			_, port, err := net.SplitHostPort(env["LISTEN_ADDR"])
			if err != nil || len(s.Ports) != 1 || s.Ports[0].Target != mustPort(t, port) {
				t.Errorf("%s: ports %v do not publish LISTEN_ADDR %q", where, s.Ports, env["LISTEN_ADDR"])
			}
		}
	}
}

func mustPort(t *testing.T, s string) uint32 {
	t.Helper()
	p, err := net.LookupPort("tcp", s)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(p)
}

func sameFile(a, b string) (bool, error) {
	fa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	fb, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(fa, fb), nil
}

package check

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// kustomization is the part of kustomize's Kustomization that
// deploy/kubernetes uses; any other field is refused.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
		Digest  string `json:"digest"`
	} `json:"images"`
}

// manifests are the decoded objects of deploy/kubernetes.
type manifests struct {
	kust        kustomization
	deployments []*appsv1.Deployment
	services    []*corev1.Service
	pdbs        []*policyv1.PodDisruptionBudget
	jobs        []*batchv1.Job
	configMaps  []*corev1.ConfigMap
	secrets     []*corev1.Secret // from secret.example.yaml, outside the kustomization
}

// newObject is the typed object of an apiVersion and kind that
// deploy/kubernetes may hold.
func newObject(tm metav1.TypeMeta) (any, error) {
	switch tm.APIVersion + " " + tm.Kind {
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}, nil
	case "v1 Service":
		return &corev1.Service{}, nil
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, nil
	case "batch/v1 Job":
		return &batchv1.Job{}, nil
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, nil
	case "v1 Secret":
		return &corev1.Secret{}, nil
	}
	return nil, fmt.Errorf("apiVersion %q kind %q is not one deploy/check knows", tm.APIVersion, tm.Kind)
}

// decodeFile decodes every YAML document of path strictly: an unknown or
// duplicated field, or a value of the wrong type, is an error.
func decodeFile(path string) ([]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var objs []any
	for i := 1; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", path, i, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", path, i, err)
		}
		obj, err := newObject(tm)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", path, i, err)
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			return nil, fmt.Errorf("%s: document %d (%s): %w", path, i, tm.Kind, err)
		}
		objs = append(objs, obj)
	}
}

// loadManifests decodes deploy/kubernetes: the kustomization, each of its
// resources, and secret.example.yaml.
func loadManifests(t *testing.T) *manifests {
	t.Helper()
	dir := deployPath("kubernetes")
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m := &manifests{}
	if err := yaml.UnmarshalStrict(b, &m.kust); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	if m.kust.APIVersion != "kustomize.config.k8s.io/v1beta1" || m.kust.Kind != "Kustomization" {
		t.Fatalf("kustomization.yaml is %s %s", m.kust.APIVersion, m.kust.Kind)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	for _, f := range files {
		name := filepath.Base(f)
		if name == "kustomization.yaml" {
			continue
		}
		listed := slices.Contains(m.kust.Resources, name)
		example := strings.HasSuffix(name, ".example.yaml")
		if listed == example {
			t.Errorf("%s: every manifest but the examples must be a resource of kustomization.yaml (listed: %v)", name, listed)
		}
	}
	for _, r := range m.kust.Resources {
		if _, err := os.Stat(filepath.Join(dir, r)); err != nil {
			t.Errorf("kustomization.yaml names %s: %v", r, err)
		}
	}
	for _, name := range append(slices.Clone(m.kust.Resources), "secret.example.yaml") {
		objs, err := decodeFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			switch o := o.(type) {
			case *appsv1.Deployment:
				m.deployments = append(m.deployments, o)
			case *corev1.Service:
				m.services = append(m.services, o)
			case *policyv1.PodDisruptionBudget:
				m.pdbs = append(m.pdbs, o)
			case *batchv1.Job:
				m.jobs = append(m.jobs, o)
			case *corev1.ConfigMap:
				m.configMaps = append(m.configMaps, o)
			case *corev1.Secret:
				if name != "secret.example.yaml" {
					t.Errorf("%s holds a Secret: secrets stay out of the kustomization (secret.example.yaml)", name)
				}
				m.secrets = append(m.secrets, o)
			}
		}
	}
	return m
}

// pod is a pod template of a workload, with where it comes from.
type pod struct {
	where    string
	replicas int
	tmpl     corev1.PodTemplateSpec
}

func (m *manifests) pods() []pod {
	var out []pod
	for _, d := range m.deployments {
		n := 1
		if d.Spec.Replicas != nil {
			n = int(*d.Spec.Replicas)
		}
		out = append(out, pod{"Deployment " + d.Name, n, d.Spec.Template})
	}
	for _, j := range m.jobs {
		out = append(out, pod{"Job " + j.Name, 1, j.Spec.Template})
	}
	return out
}

// env is the environment a pod's container gets from its ConfigMap and
// Secret (envFrom) and its own env.
func (m *manifests) env(t *testing.T, where string, c corev1.Container) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			i := slices.IndexFunc(m.configMaps, func(cm *corev1.ConfigMap) bool { return cm.Name == from.ConfigMapRef.Name })
			if i < 0 {
				t.Errorf("%s: ConfigMap %q is not in the manifests", where, from.ConfigMapRef.Name)
				continue
			}
			for k, v := range m.configMaps[i].Data {
				env[k] = v
			}
		case from.SecretRef != nil:
			i := slices.IndexFunc(m.secrets, func(s *corev1.Secret) bool { return s.Name == from.SecretRef.Name })
			if i < 0 {
				t.Errorf("%s: Secret %q is not in secret.example.yaml", where, from.SecretRef.Name)
				continue
			}
			for k, v := range m.secrets[i].StringData {
				env[k] = v
			}
		}
	}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	return env
}

func checkName(t *testing.T, kind string, meta metav1.ObjectMeta) {
	t.Helper()
	if errs := validation.IsDNS1123Subdomain(meta.Name); len(errs) > 0 {
		t.Errorf("%s %q: bad name: %v", kind, meta.Name, errs)
	}
	for k, v := range meta.Labels {
		if errs := append(validation.IsQualifiedName(k), validation.IsValidLabelValue(v)...); len(errs) > 0 {
			t.Errorf("%s %s: label %s=%s: %v", kind, meta.Name, k, v, errs)
		}
	}
}

func TestKubernetesManifestsDecodeStrictlyAndHoldTogether(t *testing.T) {
	m := loadManifests(t)
	known := settings(t)
	if len(m.deployments) != 2 || len(m.services) != 1 || len(m.jobs) != 1 || len(m.pdbs) != 2 || len(m.configMaps) != 1 || len(m.secrets) != 1 {
		t.Fatalf("want 2 Deployments (serve, worker), 1 Service, 1 Job, 2 PodDisruptionBudgets, 1 ConfigMap and 1 example Secret; got %d, %d, %d, %d, %d, %d",
			len(m.deployments), len(m.services), len(m.jobs), len(m.pdbs), len(m.configMaps), len(m.secrets))
	}
	images := map[string]bool{}
	for _, img := range m.kust.Images {
		if img.NewTag == "" && img.Digest == "" {
			t.Errorf("kustomization.yaml: image %s has neither newTag nor digest", img.Name)
		}
		images[img.Name] = true
	}

	// The settings: each in the ConfigMap or the Secret, never both, and no
	// key that the binary does not read.
	cm, secret := m.configMaps[0], m.secrets[0]
	if len(secret.Data) > 0 {
		t.Errorf("secret.example.yaml: use stringData, readable, not data")
	}
	for k := range cm.Data {
		checkEnvName(t, "ConfigMap "+cm.Name, k, known)
		if _, dup := secret.StringData[k]; dup {
			t.Errorf("%s is in both the ConfigMap and the Secret", k)
		}
	}
	for k := range secret.StringData {
		checkEnvName(t, "Secret "+secret.Name, k, known)
	}
	for _, s := range known {
		_, inCM := cm.Data[s]
		_, inSecret := secret.StringData[s]
		if !inCM && !inSecret {
			t.Errorf("setting %s is neither in the ConfigMap nor in the Secret", s)
		}
	}
	for _, s := range []string{"DATABASE_URL", "REDIS_URL", "ADMIN_TOKEN", "ADMIN_TOKENS", "METRICS_TOKEN", "OPENAI_API_KEY", "NOTIFY_WEBHOOK_URL"} {
		if _, ok := secret.StringData[s]; !ok {
			t.Errorf("%s holds a secret: it belongs in the Secret", s)
		}
	}

	for _, p := range m.pods() {
		checkPod(t, m, p, images, known)
	}
	for _, d := range m.deployments {
		checkName(t, "Deployment", d.ObjectMeta)
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Errorf("Deployment %s: its selector %v does not select its own pods (%v)", d.Name, d.Spec.Selector, err)
		}
	}
	for _, j := range m.jobs {
		checkName(t, "Job", j.ObjectMeta)
		if rp := j.Spec.Template.Spec.RestartPolicy; rp != corev1.RestartPolicyNever && rp != corev1.RestartPolicyOnFailure {
			t.Errorf("Job %s: restartPolicy %q, want Never or OnFailure", j.Name, rp)
		}
	}
	for _, pdb := range m.pdbs {
		checkName(t, "PodDisruptionBudget", pdb.ObjectMeta)
		d := selectedDeployment(t, m, "PodDisruptionBudget "+pdb.Name, pdb.Spec.Selector)
		if d != nil && pdb.Spec.MaxUnavailable == nil && pdb.Spec.MinAvailable == nil {
			t.Errorf("PodDisruptionBudget %s has neither maxUnavailable nor minAvailable", pdb.Name)
		}
	}
	for _, svc := range m.services {
		checkName(t, "Service", svc.ObjectMeta)
		d := selectedDeployment(t, m, "Service "+svc.Name, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector})
		if d == nil {
			continue
		}
		if len(svc.Spec.Ports) == 0 {
			t.Errorf("Service %s has no port", svc.Name)
		}
		for _, sp := range svc.Spec.Ports {
			if _, ok := containerPort(d.Spec.Template.Spec.Containers, sp.TargetPort); !ok {
				t.Errorf("Service %s: targetPort %s is no port of Deployment %s's containers", svc.Name, sp.TargetPort.String(), d.Name)
			}
		}
	}
	checkConnections(t, m)
}

// selectedDeployment is the one Deployment whose pods sel selects.
func selectedDeployment(t *testing.T, m *manifests, where string, sel *metav1.LabelSelector) *appsv1.Deployment {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || s.Empty() {
		t.Errorf("%s: bad or empty selector %v: %v", where, sel, err)
		return nil
	}
	var found []*appsv1.Deployment
	for _, d := range m.deployments {
		if s.Matches(labels.Set(d.Spec.Template.Labels)) {
			found = append(found, d)
		}
	}
	if len(found) != 1 {
		t.Errorf("%s selects the pods of %d Deployments, want 1", where, len(found))
		return nil
	}
	return found[0]
}

// containerPort is the port number that p (a name or a number) means among
// the containers' ports.
func containerPort(cs []corev1.Container, p intstr.IntOrString) (int32, bool) {
	for _, c := range cs {
		for _, cp := range c.Ports {
			if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
				return cp.ContainerPort, true
			}
		}
	}
	return 0, false
}

// checkPod checks a workload's pod template: its containers' images,
// commands, environment, security, ports, probes and grace period; for
// serve, it runs the binary with the pod's environment and asks the
// probes' paths.
func checkPod(t *testing.T, m *manifests, p pod, images map[string]bool, known []string) {
	t.Helper()
	spec := p.tmpl.Spec
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("%s: the pod must run as a non-root user (runAsNonRoot, runAsUser)", p.where)
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%s: %d containers, want 1", p.where, len(spec.Containers))
	}
	c := spec.Containers[0]
	where := p.where + " container " + c.Name
	if errs := validation.IsDNS1123Label(c.Name); len(errs) > 0 {
		t.Errorf("%s: bad name: %v", where, errs)
	}
	if c.Image == "" || !images[c.Image] {
		t.Errorf("%s: image %q is not one of kustomization.yaml's images", where, c.Image)
	}
	if len(c.Command) > 0 {
		t.Errorf("%s: command overrides the image's entry point; give args", where)
	}
	checkCommand(t, where, c.Args)
	if c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Errorf("%s: memory request and limit wanted", where)
	}
	if sc := c.SecurityContext; sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("%s: want allowPrivilegeEscalation false and a read-only root file system", where)
	}
	env := m.env(t, where, c)
	for _, e := range c.Env {
		checkEnvName(t, where, e.Name, known)
	}
	if u, err := url.Parse(env["DATABASE_URL"]); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Errorf("%s: DATABASE_URL must be PostgreSQL (several processes share it), got %q", where, env["DATABASE_URL"])
	}
	drain, err := time.ParseDuration(env["DRAIN_TIMEOUT"])
	if err != nil {
		t.Errorf("%s: DRAIN_TIMEOUT %q: %v", where, env["DRAIN_TIMEOUT"], err)
	}

	// Stopping: SIGTERM after preStop; the process then drains for
	// DRAIN_TIMEOUT and waits up to stopWait for releases, and must not be
	// killed before.
	var preStop time.Duration
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
		if c.Lifecycle.PreStop.Sleep == nil {
			t.Errorf("%s: preStop must be a sleep action: the image has no shell", where)
		} else {
			preStop = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
		}
	}
	role := ""
	if len(c.Args) > 0 {
		role = c.Args[0]
	}
	if role == "serve" || role == "worker" {
		grace := 30 * time.Second
		if spec.TerminationGracePeriodSeconds != nil {
			grace = time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
		}
		if need := preStop + drain + stopWait + time.Second; grace < need {
			t.Errorf("%s: terminationGracePeriodSeconds %s is below preStop %s + DRAIN_TIMEOUT %s + %s for releases + 1 s", where, grace, preStop, drain, stopWait)
		}
	}
	if role != "serve" {
		if len(c.Ports) > 0 || c.ReadinessProbe != nil || preStop > 0 {
			t.Errorf("%s: only serve listens: no ports, probes or preStop", where)
		}
		return
	}

	// serve: a preStop sleep so that the Service drops the endpoint before
	// SIGTERM, probes on paths the binary answers, LISTEN_ADDR on the
	// container's port, the scrape annotations on it.
	if preStop < 2*time.Second {
		t.Errorf("%s: want a preStop sleep of a few seconds, got %s", where, preStop)
	}
	_, port, err := net.SplitHostPort(env["LISTEN_ADDR"])
	if err != nil {
		t.Fatalf("%s: LISTEN_ADDR %q: %v", where, env["LISTEN_ADDR"], err)
	}
	if n, ok := containerPort(spec.Containers, intstr.Parse(port)); !ok || strconv.Itoa(int(n)) != port {
		t.Errorf("%s: LISTEN_ADDR's port %s is not a containerPort", where, port)
	}
	if c.ReadinessProbe == nil || c.LivenessProbe == nil {
		t.Fatalf("%s: readiness and liveness probes wanted", where)
	}
	if c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/health" {
		t.Errorf("%s: readiness must be GET /health", where)
	}
	srv := startServe(t, env)
	for name, probe := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe, "startup": c.StartupProbe} {
		if probe == nil {
			continue
		}
		if probe.HTTPGet == nil {
			t.Errorf("%s: %s probe is not an HTTP GET", where, name)
			continue
		}
		if n, ok := containerPort(spec.Containers, probe.HTTPGet.Port); !ok || strconv.Itoa(int(n)) != port {
			t.Errorf("%s: %s probe's port %s is not the one serve listens on", where, name, probe.HTTPGet.Port.String())
		}
		if code, body := srv.get(t, probe.HTTPGet.Path); code != 200 {
			t.Errorf("%s: %s probe GET %s answers %d: %s", where, name, probe.HTTPGet.Path, code, body)
		}
	}
	ann := p.tmpl.Annotations
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != port {
		t.Errorf("%s: want the annotations prometheus.io/scrape \"true\" and prometheus.io/port %q, got %v", where, port, ann)
	}
	if code, body := srv.get(t, ann["prometheus.io/path"]); code != 200 || !strings.Contains(body, "# TYPE scriptgen_") {
		t.Errorf("%s: GET %s (prometheus.io/path) answers %d without scriptgen's metrics", where, ann["prometheus.io/path"], code)
	}
	srv.stop(t, time.Duration(*spec.TerminationGracePeriodSeconds)*time.Second-preStop)
}

// checkConnections adds up the PostgreSQL connections the workloads may
// open (pool_max_conns each, serve one more for live progress) and fails
// above PostgreSQL's default max_connections: a refused connection costs
// jobs attempts.
func checkConnections(t *testing.T, m *manifests) {
	t.Helper()
	u, err := url.Parse(m.secrets[0].StringData["DATABASE_URL"])
	if err != nil {
		t.Fatalf("DATABASE_URL: %v", err)
	}
	per := 32 // the store's default
	if v := u.Query().Get("pool_max_conns"); v != "" {
		if per, err = strconv.Atoi(v); err != nil {
			t.Fatalf("pool_max_conns %q: %v", v, err)
		}
	}
	total := 0
	for _, p := range m.pods() {
		n := per
		if slices.Equal(p.tmpl.Spec.Containers[0].Args, []string{"serve"}) {
			n++
		}
		total += p.replicas * n
	}
	if total > 100 {
		t.Errorf("the workloads may open %d PostgreSQL connections (pool_max_conns=%d), over the default max_connections of 100", total, per)
	}
}

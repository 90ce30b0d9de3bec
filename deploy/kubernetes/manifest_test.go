// Package kubernetes holds the Kubernetes manifests and, in this test, the
// checks that keep them honest: every manifest decodes strictly against the
// Kubernetes API types (k8s.io/api), and the deployment has the properties
// docs/kubernetes.md promises. The package has no code of its own, so the
// Kubernetes modules reach the test binary only, never asymptote's.
package kubernetes

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/util/intstr"
	kyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// kustomization is the part of kustomization.yaml this deployment uses;
// it is decoded strictly, so a field it does not list fails the test.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
	} `json:"images"`
}

// objects are the deployment's decoded manifests.
type objects struct {
	namespace string
	all       []runtime.Object
}

// load reads kustomization.yaml and decodes every document of every
// resource it lists, strictly: an unknown or duplicated field, a wrong
// type or an unregistered kind is an error.
func load(t *testing.T) objects {
	t.Helper()
	var k kustomization
	readStrict(t, "kustomization.yaml", &k)
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Fatalf("kustomization.yaml: %s %s, want kustomize.config.k8s.io/v1beta1 Kustomization", k.APIVersion, k.Kind)
	}
	// Every manifest here is listed, so none is silently left out of a
	// build, and every listed one exists.
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files = slices.DeleteFunc(files, func(f string) bool { return f == "kustomization.yaml" })
	if listed := slices.Sorted(slices.Values(k.Resources)); !slices.Equal(listed, files) {
		t.Fatalf("kustomization.yaml lists %v; the directory holds %v", listed, files)
	}

	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, policyv1.AddToScheme, networkingv1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	codec := kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme, kjson.SerializerOptions{Yaml: true, Strict: true})
	objs := objects{namespace: k.Namespace}
	for _, f := range k.Resources {
		for i, doc := range documents(t, f) {
			obj, _, err := codec.Decode(doc, nil, nil)
			if err != nil {
				t.Fatalf("%s, document %d: %v", f, i+1, err)
			}
			objs.all = append(objs.all, obj)
		}
	}
	return objs
}

func documents(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := kyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if !onlyComments(doc) {
			docs = append(docs, doc)
		}
	}
}

// onlyComments says whether doc has nothing but comments and blank lines.
func onlyComments(doc []byte) bool {
	for line := range bytes.Lines(doc) {
		if l := bytes.TrimSpace(line); len(l) > 0 && l[0] != '#' {
			return false
		}
	}
	return true
}

func readStrict(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func find[T runtime.Object](t *testing.T, objs objects, name string) T {
	t.Helper()
	for _, o := range objs.all {
		if v, ok := o.(T); ok && o.(metav1.Object).GetName() == name {
			return v
		}
	}
	var zero T
	t.Fatalf("no %T named %s among the manifests", zero, name)
	return zero
}

// TestManifestsDecode decodes everything (load fails on any error) and
// checks the kinds the deployment is made of are all there.
func TestManifestsDecode(t *testing.T) {
	objs := load(t)
	var kinds []string
	for _, o := range objs.all {
		kinds = append(kinds, fmt.Sprintf("%T", o))
	}
	for _, want := range []string{"*v1.Namespace", "*v1.ConfigMap", "*v1.StatefulSet", "*v1.Service", "*v1.PodDisruptionBudget", "*v1.Deployment", "*v1.NetworkPolicy"} {
		if !slices.Contains(kinds, want) {
			t.Errorf("no %s among the manifests (%v)", want, kinds)
		}
	}
	if objs.namespace != find[*corev1.Namespace](t, objs, objs.namespace).Name {
		t.Errorf("kustomization namespace %q has no Namespace manifest", objs.namespace)
	}
}

// TestCoordinators checks the coordinators: a StatefulSet of at least two
// (leader election needs a standby), each with its pod name as its
// election ID, etcd and NATS from the configuration, and probes on the
// health endpoints the binary serves.
func TestCoordinators(t *testing.T) {
	objs := load(t)
	sts := find[*appsv1.StatefulSet](t, objs, "asymptote-coordinator")
	if r := sts.Spec.Replicas; r == nil || *r < 2 {
		t.Errorf("coordinator replicas %v, want at least 2 so that a standby takes over", ptrString(r))
	}
	pod := sts.Spec.Template
	checkSelector(t, "StatefulSet", sts.Spec.Selector, pod.Labels)
	c := container(t, pod.Spec, "coordinator")
	if len(c.Args) == 0 || c.Args[0] != "coordinator" {
		t.Errorf("coordinator args %v, want the coordinator command", c.Args)
	}
	env := environment(t, objs, c)
	checkFieldRef(t, c, "ASYMPTOTE_ID", "metadata.name")
	endpoints := env["ASYMPTOTE_ETCD_ENDPOINTS"]
	if endpoints == "" || env["ASYMPTOTE_NATS_URL"] == "" {
		t.Errorf("coordinator environment %v, want ASYMPTOTE_ETCD_ENDPOINTS and ASYMPTOTE_NATS_URL (both, or it starts embedded servers)", env)
	}
	checkProbes(t, "coordinator", c, env)
	svc := find[*corev1.Service](t, objs, sts.Spec.ServiceName)
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("service %s: clusterIP %q, want None (the StatefulSet's governing service)", svc.Name, svc.Spec.ClusterIP)
	}
	checkSelector(t, "Service "+svc.Name, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, pod.Labels)
	pdb := find[*policyv1.PodDisruptionBudget](t, objs, "asymptote-coordinator")
	checkSelector(t, "PodDisruptionBudget", pdb.Spec.Selector, pod.Labels)
}

// TestAgents checks the agents: GPU requests, a node selector, the pod
// name as node ID, probes, and nothing of etcd in their pods.
func TestAgents(t *testing.T) {
	objs := load(t)
	d := find[*appsv1.Deployment](t, objs, "asymptote-agent")
	pod := d.Spec.Template
	checkSelector(t, "Deployment", d.Spec.Selector, pod.Labels)
	c := container(t, pod.Spec, "agent")
	if len(c.Args) == 0 || c.Args[0] != "agent" {
		t.Errorf("agent args %v, want the agent command", c.Args)
	}
	gpu := corev1.ResourceName("nvidia.com/gpu")
	limit, request := c.Resources.Limits[gpu], c.Resources.Requests[gpu]
	if limit.Cmp(resource.MustParse("1")) < 0 || limit.Cmp(request) != 0 {
		t.Errorf("agent nvidia.com/gpu limit %s, request %s: want at least 1, and equal (extended resources are not overcommitted)", limit.String(), request.String())
	}
	if len(pod.Spec.NodeSelector) == 0 {
		t.Error("agent pods have no node selector: they would land on nodes without GPUs")
	}
	env := environment(t, objs, c)
	checkFieldRef(t, c, "ASYMPTOTE_NODE_ID", "metadata.name")
	if env["ASYMPTOTE_NATS_URL"] == "" {
		t.Errorf("agent environment %v, want ASYMPTOTE_NATS_URL", env)
	}
	checkProbes(t, "agent", c, env)
	for _, r := range []struct{ env, resource string }{{"ASYMPTOTE_CPUS", "limits.cpu"}, {"ASYMPTOTE_MEMORY", "limits.memory"}} {
		if ref := envVar(c, r.env); ref == nil || ref.ValueFrom == nil || ref.ValueFrom.ResourceFieldRef == nil || ref.ValueFrom.ResourceFieldRef.Resource != r.resource {
			t.Errorf("agent %s: want it from the pod's %s, so the agent offers what the pod was given", r.env, r.resource)
		}
	}
	if g := pod.Spec.TerminationGracePeriodSeconds; g == nil || *g < 30 {
		t.Errorf("agent terminationGracePeriodSeconds %s, want at least 30 for the agent to report its attempts preempted", ptrString(g))
	}
	checkNoEtcd(t, objs, pod.Spec)
}

// checkNoEtcd fails when an agent pod could learn where etcd is or hold a
// credential: an environment variable naming etcd (directly or from a
// ConfigMap), any Secret, or a service-account token.
func checkNoEtcd(t *testing.T, objs objects, spec corev1.PodSpec) {
	t.Helper()
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("agent pods mount a service-account token; set automountServiceAccountToken: false")
	}
	for _, v := range spec.Volumes {
		if v.Secret != nil || v.Projected != nil || v.CSI != nil {
			t.Errorf("agent volume %s carries a secret or projected credential", v.Name)
		}
	}
	for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
		for name, value := range environment(t, objs, &c) {
			if strings.Contains(strings.ToLower(name+"="+value), "etcd") {
				t.Errorf("agent container %s: %s=%s names etcd; agents talk to NATS only", c.Name, name, value)
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				t.Errorf("agent container %s: %s comes from a Secret", c.Name, e.Name)
			}
		}
		for _, e := range c.EnvFrom {
			if e.SecretRef != nil {
				t.Errorf("agent container %s reads Secret %s into its environment", c.Name, e.SecretRef.Name)
			}
		}
	}
}

// TestEtcdOnlyForCoordinators checks the network policy: etcd's clients
// port admits coordinator pods and not agent pods.
func TestEtcdOnlyForCoordinators(t *testing.T) {
	objs := load(t)
	np := find[*networkingv1.NetworkPolicy](t, objs, "etcd-clients-are-coordinators")
	var etcd etcdCluster
	readStrict(t, "dependencies/etcd-cluster.yaml", &etcd)
	member := labels.Set{"app": etcd.Metadata.Name, "controller": etcd.Metadata.Name} // the operator's pod labels
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil || !sel.Matches(member) {
		t.Fatalf("network policy selects %v (%v), not etcd's members %v", np.Spec.PodSelector, err, member)
	}
	coordinator := find[*appsv1.StatefulSet](t, objs, "asymptote-coordinator").Spec.Template.Labels
	agent := find[*appsv1.Deployment](t, objs, "asymptote-agent").Spec.Template.Labels
	tests := []struct {
		who    string
		labels map[string]string
		want   bool
	}{{"coordinator pods", coordinator, true}, {"agent pods", agent, false}, {"unlabelled pods", map[string]string{}, false}}
	for _, tt := range tests {
		if got := admits(t, np, labels.Set(tt.labels), 2379); got != tt.want {
			t.Errorf("etcd's port 2379 admits %s of this namespace: %v, want %v", tt.who, got, tt.want)
		}
	}
}

// admits says whether np lets a pod of the policy's own namespace with
// labels reach port.
func admits(t *testing.T, np *networkingv1.NetworkPolicy, pod labels.Set, port int) bool {
	t.Helper()
	for _, rule := range np.Spec.Ingress {
		portOK := len(rule.Ports) == 0
		for _, p := range rule.Ports {
			portOK = portOK || (p.Port != nil && p.Port.IntValue() == port)
		}
		for _, peer := range rule.From {
			if peer.PodSelector == nil || peer.NamespaceSelector != nil || peer.IPBlock != nil {
				continue // other namespaces or addresses
			}
			sel, err := metav1.LabelSelectorAsSelector(peer.PodSelector)
			if err != nil {
				t.Fatal(err)
			}
			if portOK && sel.Matches(pod) {
				return true
			}
		}
	}
	return false
}

// etcdCluster is the part of the etcd operator's EtcdCluster
// (operator.etcd.io/v1alpha1) that dependencies/etcd-cluster.yaml uses; the
// operator's own types are not a dependency here, so this mirrors the
// fields by name and is decoded strictly.
type etcdCluster struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Spec struct {
		Size        int      `json:"size"`
		Version     string   `json:"version"`
		EtcdOptions []string `json:"etcdOptions"`
		StorageSpec struct {
			AccessModes       string            `json:"accessModes"`
			VolumeSizeRequest resource.Quantity `json:"volumeSizeRequest"`
		} `json:"storageSpec"`
	} `json:"spec"`
}

// natsValues is the part of the NATS chart's values that
// dependencies/nats-values.yaml sets.
type natsValues struct {
	Config struct {
		Cluster struct {
			Enabled  bool `json:"enabled"`
			Replicas int  `json:"replicas"`
		} `json:"cluster"`
		JetStream struct {
			Enabled   bool `json:"enabled"`
			FileStore struct {
				PVC struct {
					Size resource.Quantity `json:"size"`
				} `json:"pvc"`
			} `json:"fileStore"`
		} `json:"jetstream"`
	} `json:"config"`
}

// TestDependencies checks that the configuration points where the etcd
// operator and the NATS chart put their servers: one endpoint per etcd
// member, by the names the operator gives them; NATS by the chart's
// release Service; and as many copies of the events stream as NATS has
// servers.
func TestDependencies(t *testing.T) {
	objs := load(t)
	var etcd etcdCluster
	readStrict(t, "dependencies/etcd-cluster.yaml", &etcd)
	if etcd.APIVersion != "operator.etcd.io/v1alpha1" || etcd.Kind != "EtcdCluster" || etcd.Spec.Size < 3 || etcd.Spec.Size%2 == 0 {
		t.Errorf("etcd cluster %s %s of size %d: want an operator.etcd.io/v1alpha1 EtcdCluster of an odd size, 3 or more", etcd.APIVersion, etcd.Kind, etcd.Spec.Size)
	}
	if etcd.Metadata.Namespace != objs.namespace {
		t.Errorf("etcd cluster in namespace %q, want %q", etcd.Metadata.Namespace, objs.namespace)
	}
	coord := find[*corev1.ConfigMap](t, objs, "asymptote-coordinator").Data
	var want []string
	for i := range etcd.Spec.Size {
		want = append(want, fmt.Sprintf("http://%s-%d.%s.%s.svc.cluster.local:2379", etcd.Metadata.Name, i, etcd.Metadata.Name, objs.namespace))
	}
	if got := strings.Split(coord["ASYMPTOTE_ETCD_ENDPOINTS"], ","); !slices.Equal(got, want) {
		t.Errorf("ASYMPTOTE_ETCD_ENDPOINTS %v, want the operator's members %v", got, want)
	}

	var nats natsValues
	readStrict(t, "dependencies/nats-values.yaml", &nats)
	if !nats.Config.JetStream.Enabled || !nats.Config.Cluster.Enabled || nats.Config.JetStream.FileStore.PVC.Size.IsZero() {
		t.Errorf("NATS values %+v: want a cluster with JetStream on persistent volumes", nats.Config)
	}
	if got, want := coord["ASYMPTOTE_STREAM_REPLICAS"], fmt.Sprint(nats.Config.Cluster.Replicas); got != want {
		t.Errorf("ASYMPTOTE_STREAM_REPLICAS %q, want %s, one per NATS server", got, want)
	}
	if got, want := find[*corev1.ConfigMap](t, objs, "asymptote-bus").Data["ASYMPTOTE_NATS_URL"], "nats://nats."+objs.namespace+".svc.cluster.local:4222"; got != want {
		t.Errorf("ASYMPTOTE_NATS_URL %q, want %q (the Service of the chart's release nats)", got, want)
	}
}

func container(t *testing.T, spec corev1.PodSpec, name string) *corev1.Container {
	t.Helper()
	for i := range spec.Containers {
		if spec.Containers[i].Name == name {
			return &spec.Containers[i]
		}
	}
	t.Fatalf("no container %s", name)
	return nil
}

func envVar(c *corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

// environment is c's environment with the ConfigMaps it reads resolved
// (values from the downward API are left empty, but present).
func environment(t *testing.T, objs objects, c *corev1.Container) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef != nil {
			for k, v := range find[*corev1.ConfigMap](t, objs, from.ConfigMapRef.Name).Data {
				env[from.Prefix+k] = v
			}
		}
	}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	return env
}

func checkFieldRef(t *testing.T, c *corev1.Container, name, path string) {
	t.Helper()
	e := envVar(c, name)
	if e == nil || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != path {
		t.Errorf("%s: %s is not taken from the pod's %s", c.Name, name, path)
	}
}

// checkProbes checks that liveness and readiness probe the binary's health
// endpoints on the port it serves them on (-health, from the environment).
func checkProbes(t *testing.T, who string, c *corev1.Container, env map[string]string) {
	t.Helper()
	_, port, err := net.SplitHostPort(env["ASYMPTOTE_HEALTH"])
	if err != nil {
		t.Fatalf("%s: ASYMPTOTE_HEALTH %q: %v; want an address such as :8471", who, env["ASYMPTOTE_HEALTH"], err)
	}
	for _, p := range []struct {
		kind  string
		probe *corev1.Probe
		path  string
	}{{"liveness", c.LivenessProbe, "/livez"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s has no HTTP %s probe", who, p.kind)
			continue
		}
		if p.probe.HTTPGet.Path != p.path {
			t.Errorf("%s %s probe path %s, want %s", who, p.kind, p.probe.HTTPGet.Path, p.path)
		}
		if got := containerPort(c, p.probe.HTTPGet.Port); fmt.Sprint(got) != port {
			t.Errorf("%s %s probe port %s is %d, want the -health port %s", who, p.kind, p.probe.HTTPGet.Port.String(), got, port)
		}
	}
}

func containerPort(c *corev1.Container, p intstr.IntOrString) int32 {
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	return 0
}

func ptrString[T any](p *T) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}

func checkSelector(t *testing.T, who string, s *metav1.LabelSelector, pod map[string]string) {
	t.Helper()
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil || sel.Empty() || !sel.Matches(labels.Set(pod)) {
		t.Errorf("%s selector %v (%v) does not select its pods %v", who, s, err, pod)
	}
}

// TestEnvironmentNamesFlags checks that every ASYMPTOTE_ variable a pod
// gets names a flag of the command its container runs: the binary ignores
// a variable no flag has, so a misspelt one would change nothing, silently.
func TestEnvironmentNamesFlags(t *testing.T) {
	objs := load(t)
	bin := filepath.Join(t.TempDir(), "asymptote")
	if out, err := exec.Command("go", "build", "-o", bin, "asymptote.dev/asymptote/cmd/asymptote").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	pods := []struct {
		name string
		spec corev1.PodSpec
	}{
		{"coordinator", find[*appsv1.StatefulSet](t, objs, "asymptote-coordinator").Spec.Template.Spec},
		{"agent", find[*appsv1.Deployment](t, objs, "asymptote-agent").Spec.Template.Spec},
	}
	for _, p := range pods {
		c := container(t, p.spec, p.name)
		flags := commandFlags(t, bin, c.Args[0])
		for name := range environment(t, objs, c) {
			flag, ok := strings.CutPrefix(name, "ASYMPTOTE_")
			if !ok {
				continue
			}
			flag = strings.ToLower(strings.ReplaceAll(flag, "_", "-"))
			if !flags[flag] {
				t.Errorf("%s: %s names no flag of asymptote %s (-%s)", p.name, name, c.Args[0], flag)
			}
		}
	}
}

// commandFlags lists the flags `asymptote cmd -h` prints.
func commandFlags(t *testing.T, bin, cmd string) map[string]bool {
	t.Helper()
	out, _ := exec.Command(bin, cmd, "-h").CombinedOutput() // -h exits non-zero
	flags := map[string]bool{}
	for line := range strings.Lines(string(out)) {
		if f, ok := strings.CutPrefix(strings.TrimSpace(line), "-"); ok && strings.HasPrefix(line, "  -") {
			name, _, _ := strings.Cut(f, " ")
			flags[name] = true
		}
	}
	if len(flags) < 3 {
		t.Fatalf("asymptote %s -h listed %d flags:\n%s", cmd, len(flags), out)
	}
	return flags
}

package helm

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"text/template"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// inferencePool mirrors inference.networking.k8s.io/v1 InferencePool (the
// Inference Extension's API module is not a dependency of roe).
type inferencePool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector    metav1.LabelSelector `json:"selector"`
		TargetPorts []struct {
			Number int32 `json:"number"`
		} `json:"targetPorts"`
		AppProtocol       string `json:"appProtocol,omitempty"`
		EndpointPickerRef struct {
			Group *string `json:"group,omitempty"`
			Kind  string  `json:"kind,omitempty"`
			Name  string  `json:"name"`
			Port  *struct {
				Number int32 `json:"number"`
			} `json:"port,omitempty"`
			FailureMode string `json:"failureMode,omitempty"`
		} `json:"endpointPickerRef"`
	} `json:"spec"`
}

// httpRoute mirrors the parts of gateway.networking.k8s.io/v1 HTTPRoute the example uses.
type httpRoute struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		ParentRefs []struct {
			Name string `json:"name"`
		} `json:"parentRefs"`
		Rules []struct {
			Matches []struct {
				Path struct {
					Type  string `json:"type"`
					Value string `json:"value"`
				} `json:"path"`
			} `json:"matches"`
			BackendRefs []struct {
				Group string `json:"group"`
				Kind  string `json:"kind"`
				Name  string `json:"name"`
			} `json:"backendRefs"`
			Timeouts struct {
				Request string `json:"request"`
			} `json:"timeouts"`
		} `json:"rules"`
	} `json:"spec"`
}

func newObject(apiVersion, kind string) (any, error) {
	switch apiVersion + "/" + kind {
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}, nil
	case "v1/Secret":
		return &corev1.Secret{}, nil
	case "v1/Service":
		return &corev1.Service{}, nil
	case "v1/ServiceAccount":
		return &corev1.ServiceAccount{}, nil
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}, nil
	case "policy/v1/PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, nil
	case "autoscaling/v2/HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}, nil
	case "rbac.authorization.k8s.io/v1/Role":
		return &rbacv1.Role{}, nil
	case "rbac.authorization.k8s.io/v1/RoleBinding":
		return &rbacv1.RoleBinding{}, nil
	case "inference.networking.k8s.io/v1/InferencePool":
		return &inferencePool{}, nil
	case "gateway.networking.k8s.io/v1/HTTPRoute":
		return &httpRoute{}, nil
	}
	return nil, fmt.Errorf("unknown object %s %s", apiVersion, kind)
}

// merge copies src over dst, recursing into maps.
func merge(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				merge(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

// render renders the chart as `helm template` would with the overrides set.
func render(t *testing.T, dir string, set map[string]any) string {
	t.Helper()
	read := func(name string) map[string]any {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := yaml.UnmarshalStrict(b, &m); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return m
	}
	chart := map[string]any{}
	for k, v := range read("Chart.yaml") {
		chart[strings.ToUpper(k[:1])+k[1:]] = v
	}
	values := read("values.yaml")
	merge(values, set)
	data := map[string]any{"Values": values, "Chart": chart,
		"Release": map[string]any{"Name": "roe", "Namespace": "serving", "Service": "Helm"}}

	root := template.New("chart").Option("missingkey=zero")
	root.Funcs(template.FuncMap{
		"include": func(name string, data any) (string, error) {
			var b bytes.Buffer
			err := root.ExecuteTemplate(&b, name, data)
			return b.String(), err
		},
		"toYaml": func(v any) (string, error) {
			b, err := yaml.Marshal(v)
			return strings.TrimSuffix(string(b), "\n"), err
		},
		"indent": func(n int, s string) string {
			pad := strings.Repeat(" ", n)
			return pad + strings.ReplaceAll(s, "\n", "\n"+pad)
		},
		"nindent": func(n int, s string) string {
			pad := strings.Repeat(" ", n)
			return "\n" + pad + strings.ReplaceAll(s, "\n", "\n"+pad)
		},
		"quote":  func(v any) string { return fmt.Sprintf("%q", fmt.Sprint(v)) },
		"b64enc": func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) },
		"trunc": func(n int, s string) string {
			if len(s) > n {
				return s[:n]
			}
			return s
		},
		"trimSuffix": func(suffix, s string) string { return strings.TrimSuffix(s, suffix) },
	})
	files, _ := filepath.Glob(filepath.Join(dir, "templates", "*"))
	slices.Sort(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := root.New(filepath.Base(f)).Parse(string(b)); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	var out strings.Builder
	for _, f := range files {
		name := filepath.Base(f)
		if strings.HasPrefix(name, "_") {
			continue
		}
		var b bytes.Buffer
		if err := root.ExecuteTemplate(&b, name, data); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if strings.Contains(b.String(), "<no value>") {
			t.Fatalf("%s uses a value that values.yaml lacks:\n%s", name, b.String())
		}
		fmt.Fprintf(&out, "---\n# Source: roe/templates/%s\n%s\n", name, b.String())
	}
	return out.String()
}

// decode strictly decodes every object of a multi-document YAML stream.
func decode(t *testing.T, stream string) (map[string][]any, error) {
	t.Helper()
	objs := map[string][]any{}
	for _, doc := range strings.Split(stream, "\n---") {
		var probe struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		j, err := yaml.YAMLToJSONStrict([]byte(doc))
		if err != nil {
			return nil, fmt.Errorf("%w in\n%s", err, doc)
		}
		if string(j) == "null" {
			continue // only comments
		}
		if err := json.Unmarshal(j, &probe); err != nil {
			return nil, err
		}
		obj, err := newObject(probe.APIVersion, probe.Kind)
		if err != nil {
			return nil, err
		}
		dec := json.NewDecoder(bytes.NewReader(j))
		dec.DisallowUnknownFields()
		if err := dec.Decode(obj); err != nil {
			return nil, fmt.Errorf("%s: %w", probe.Kind, err)
		}
		objs[probe.Kind] = append(objs[probe.Kind], obj)
	}
	return objs, nil
}

func kinds(objs map[string][]any) []string {
	var ks []string
	for k, v := range objs {
		for range v {
			ks = append(ks, k)
		}
	}
	slices.Sort(ks)
	return ks
}

func TestChartDefaults(t *testing.T) {
	objs, err := decode(t, render(t, "roe", nil))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ConfigMap", "Deployment", "PodDisruptionBudget", "Secret", "Service", "ServiceAccount"}
	if got := kinds(objs); !slices.Equal(got, want) {
		t.Fatalf("objects %v, want %v", got, want)
	}
	d := objs["Deployment"][0].(*appsv1.Deployment)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
		t.Errorf("replicas %v, want 3", d.Spec.Replicas)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if !slices.Contains(c.Args, "--library=s3://roe-library/prod") || c.Args[0] != "serve" {
		t.Errorf("args %v", c.Args)
	}
	if c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Error("probes do not use /readyz and /healthz")
	}
	if c.Resources.Requests.Cpu().String() != "2" || c.Resources.Limits.Memory().String() != "4Gi" {
		t.Errorf("resources %v", c.Resources)
	}
	for k, v := range d.Spec.Selector.MatchLabels {
		if d.Spec.Template.Labels[k] != v {
			t.Errorf("the selector's %s=%s is not on the pods", k, v)
		}
	}
	s := objs["Secret"][0].(*corev1.Secret)
	if _, ok := s.Data["ROE_API_KEY"]; !ok {
		t.Error("the Secret has no ROE_API_KEY")
	}
}

func TestChartScaledWithInferencePool(t *testing.T) {
	out := render(t, "roe", map[string]any{
		"autoscaling":        map[string]any{"enabled": true},
		"inferenceExtension": map[string]any{"enabled": true},
		"credentials":        map[string]any{"existingSecret": "roe-s3"},
		"library":            map[string]any{"endpoint": "http://minio:9000", "pathStyle": true},
		"extraArgs":          []any{"--max-batch=16"},
	})
	objs, err := decode(t, out)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ConfigMap", "Deployment", "Deployment", "HorizontalPodAutoscaler", "InferencePool", "PodDisruptionBudget",
		"Role", "RoleBinding", "Service", "Service", "ServiceAccount", "ServiceAccount"}
	if got := kinds(objs); !slices.Equal(got, want) {
		t.Fatalf("objects %v, want %v", got, want)
	}
	var roe, epp *appsv1.Deployment
	for _, o := range objs["Deployment"] {
		if d := o.(*appsv1.Deployment); d.Name == "roe-roe" {
			roe = d
		} else {
			epp = d
		}
	}
	if roe.Spec.Replicas != nil {
		t.Error("with the autoscaler the Deployment must not fix replicas")
	}
	if !slices.Contains(roe.Spec.Template.Spec.Containers[0].Args, "--max-batch=16") {
		t.Error("extraArgs not passed")
	}
	cm := objs["ConfigMap"][0].(*corev1.ConfigMap)
	if cm.Data["AWS_ENDPOINT_URL"] != "http://minio:9000" || cm.Data["ROE_S3_PATH_STYLE"] != "true" {
		t.Errorf("config %v", cm.Data)
	}
	hpa := objs["HorizontalPodAutoscaler"][0].(*autoscalingv2.HorizontalPodAutoscaler)
	if m := hpa.Spec.Metrics[0]; m.Pods == nil || m.Pods.Metric.Name != "roe_num_requests_waiting" {
		t.Errorf("HPA metric %+v", m)
	}
	pool := objs["InferencePool"][0].(*inferencePool)
	for k, v := range pool.Spec.Selector.MatchLabels {
		if roe.Spec.Template.Labels[k] != v {
			t.Errorf("the pool selects %s=%s, which roe's pods lack", k, v)
		}
	}
	if pool.Spec.TargetPorts[0].Number != 8080 || pool.Spec.EndpointPickerRef.Name != epp.Name {
		t.Errorf("pool %+v", pool.Spec)
	}
	args := strings.Join(epp.Spec.Template.Spec.Containers[0].Args, " ")
	for _, m := range []string{"roe_num_requests_waiting", "roe_num_requests_running", "roe_kv_cache_usage_perc", "roe_lora_requests_info"} {
		if !strings.Contains(args, m) {
			t.Errorf("the endpoint picker is not pointed at %s: %s", m, args)
		}
	}
}

// A misspelled field is refused, not silently dropped.
func TestStrictDecodeCatchesTypos(t *testing.T) {
	out := strings.Replace(render(t, "roe", nil), "  replicas: 3", "  replicass: 3", 1)
	if _, err := decode(t, out); err == nil || !strings.Contains(err.Error(), "replicass") {
		t.Fatalf("a typo decoded: %v", err)
	}
}

func TestHTTPRouteExample(t *testing.T) {
	b, err := os.ReadFile("examples/httproute-inferencepool.yaml")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decode(t, string(b))
	if err != nil {
		t.Fatal(err)
	}
	r := objs["HTTPRoute"][0].(*httpRoute)
	if ref := r.Spec.Rules[0].BackendRefs[0]; ref.Kind != "InferencePool" || ref.Name != "roe-roe" {
		t.Errorf("backend %+v", ref)
	}
}

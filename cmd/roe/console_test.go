package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"roe/adapters"
)

// TestConsole drives the web console in a real headless Chromium (the path
// in $ROE_CHROMIUM; `make test-console` installs Debian's and sets it) against
// `roe serve` with the embedded model and starter library: sign-in, search,
// an expert's page, routing a prompt and comparing the routed and base
// completions, uploading an expert and finding it in the list and on the map,
// exporting and deleting it, a training job whose progress moves, health, a
// 400-px window, sign-out.
// Any JavaScript error fails it. Screenshots go to $ROE_CONSOLE_SHOTS.
func TestConsole(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short")
	}
	chromium := os.Getenv("ROE_CHROMIUM")
	if chromium == "" {
		t.Skip("SKIP console test: set ROE_CHROMIUM to a Chromium binary (make test-console installs Debian's)")
	}
	shots := os.Getenv("ROE_CONSOLE_SHOTS")
	if shots != "" {
		if err := os.MkdirAll(shots, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	const key = "console-key"
	base := startServe(t, "--library", filepath.Join(t.TempDir(), "lib"), "--api-key", key,
		"--data", "../../../shared/data/tasks", "--templates", "../../../shared/data/templates")

	// The expert to upload: a random rank-4 adapter of the served base and
	// instances of a task no starter expert has.
	cfg, err := loadConfig("roe-base")
	if err != nil {
		t.Fatal(err)
	}
	up := t.TempDir()
	if err := adapters.Random(cfg, 4, 7).Save(up); err != nil {
		t.Fatal(err)
	}
	var ins bytes.Buffer
	for _, s := range []string{"2 + 2", "17 times 3", "the square root of 81", "12 divided by 4", "9 minus 5", "6 squared"} {
		fmt.Fprintf(&ins, "{\"input\": %q, \"target\": \"a number\"}\n", "Compute: "+s+". Answer with the number only.")
	}
	if err := os.WriteFile(filepath.Join(up, "instances.jsonl"), ins.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.Flag("no-first-run", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 800))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()

	// Every JavaScript exception or console.error fails the test; so does a
	// logged error, except the failed requests (401) of the steps without the key.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	ctx, cancelT := context.WithTimeout(ctx, 5*time.Minute) // after the first call, which starts the browser
	defer cancelT()
	var mu sync.Mutex
	var jsErrors []string
	allow401 := true
	if err := chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			desc := d.Text
			if d.Exception != nil {
				desc += " " + d.Exception.Description
			}
			jsErrors = append(jsErrors, fmt.Sprintf("exception: %s (%s:%d)", desc, d.URL, d.LineNumber+1))
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, a.Description+string(a.Value))
				}
				jsErrors = append(jsErrors, "console.error: "+strings.Join(parts, " "))
			}
		case *cdplog.EventEntryAdded:
			e := ev.Entry
			if e.Level == cdplog.EntryLevelError && !(allow401 && e.Source == cdplog.EntrySourceNetwork && strings.Contains(e.Text, "401")) {
				jsErrors = append(jsErrors, fmt.Sprintf("%s: %s (%s)", e.Source, e.Text, e.URL))
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	fail := func(name string, err error) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("%s: %v (JavaScript errors so far: %v)", name, err, jsErrors)
	}
	do := func(name string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			fail(name, err)
		}
	}
	evalBool := func(name, expr string) bool {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err != nil {
			fail(name, err)
		}
		return v
	}
	evalString := func(name, expr string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		if err != nil {
			fail(name, err)
		}
		return v
	}
	evalInt := func(name, expr string) int {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[int](expr))
		if err != nil {
			fail(name, err)
		}
		return v
	}
	shot := func(name string) {
		t.Helper()
		if shots == "" {
			return
		}
		b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			fail("screenshot "+name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, name+".png"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// waitJS polls a JavaScript condition (the page updates asynchronously).
	waitJS := func(cond string) chromedp.Action[chromedp.Void] {
		return chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingTimeout(90*time.Second), chromedp.WithPollingInterval(100*time.Millisecond))
	}

	// clearInput empties an input (SetValue cannot set "").
	clearInput := func(sel string) chromedp.Action[chromedp.Void] {
		return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			_, err := chromedp.Evaluate[bool](`(document.querySelector(`+strconv.Quote(sel)+`).value = "") === ""`)(ctx, tg)
			return chromedp.Void{}, err
		}
	}

	// Without the key: a login prompt and no data.
	do("open", chromedp.Navigate(base+"/"), chromedp.WaitVisible("#login"))
	if n := evalInt("rows", `document.querySelectorAll("#experts tbody tr").length`); n != 0 || !evalBool("hidden", `document.querySelector("#app").hidden`) {
		t.Fatalf("without the key the page shows %d experts, or its data", n)
	}
	shot("1-login")
	do("wrong key", chromedp.SendKeys("#key", "nope"), chromedp.Click(`#login-form button[type=submit]`),
		waitJS(`document.querySelector("#login-error").textContent.includes("incorrect")`))
	mu.Lock()
	allow401 = false
	mu.Unlock()

	// With it: the library, a search, an expert's page.
	do("sign in", clearInput("#key"), chromedp.SendKeys("#key", key), chromedp.Click(`#login-form button[type=submit]`),
		chromedp.WaitVisible("#experts tbody tr"))
	shot("2-library")
	if total := evalInt("rows", `document.querySelectorAll("#experts tbody tr").length`); total < 50 {
		t.Errorf("the library lists %d experts, want the 52 of the starter library", total)
	}
	do("search", chromedp.SendKeys("#search", "wic"), waitJS(`document.querySelectorAll("#experts tbody tr").length === 1`),
		chromedp.Click(`#experts tbody tr[data-name="wic"]`), chromedp.WaitVisible("#expert-detail h2"),
		waitJS(`document.querySelector("#adapter-config").textContent.includes("lora_alpha")`))
	shot("3-expert")

	// Routing: the page shows the server's decision; then the routed and the
	// base completions stream side by side.
	prompt := "Was this movie review positive or negative? I loved every minute of it, the acting was superb."
	do("route", chromedp.Click(`#tabs button[data-tab="route"]`), chromedp.WaitVisible("#prompt"),
		chromedp.SendKeys("#prompt", prompt), chromedp.Click("#route-btn"), chromedp.WaitVisible("#route-chosen"),
		chromedp.WaitVisible("#candidates tbody tr"),
		// The server's default background: the request's likeness to general requests is shown.
		waitJS(`document.querySelector("#route-summary").textContent.includes("likeness to general requests")`))
	chosen, err := chromedp.Run(ctx, chromedp.AttributeValue("#route-chosen", "data-expert"))
	if err != nil {
		fail("chosen", err)
	}
	if want := routeAPI(t, base, key, prompt); chosen.Value != want || want == "" {
		t.Errorf("the page shows %q as chosen, the API chose %q", chosen.Value, want)
	}
	do("compare", chromedp.Click("#run-btn"),
		waitJS(`document.querySelector("#out-expert").dataset.done === "1" && document.querySelector("#out-base").dataset.done === "1" && !document.querySelector("#run-btn").disabled`))
	if n := evalInt("routed text", `document.querySelector("#out-expert").textContent.length`); n == 0 {
		t.Error("the routed completion streamed no text")
	}
	shot("4-route")

	// Upload an expert: it is listed and its instances are on the map.
	do("upload", chromedp.Click(`#tabs button[data-tab="add"]`), chromedp.WaitVisible("#add-name"),
		chromedp.SendKeys("#add-name", "console-upload"),
		chromedp.SetUploadFiles("#add-config", []string{filepath.Join(up, "adapter_config.json")}),
		chromedp.SetUploadFiles("#add-weights", []string{filepath.Join(up, "adapter_model.safetensors")}),
		chromedp.SetUploadFiles("#add-instances", []string{filepath.Join(up, "instances.jsonl")}),
		chromedp.Click("#add-btn"),
		waitJS(`!document.querySelector("#map").hidden && state.mapData !== null && state.mapData.instances.some(p => p.expert === "console-upload")`),
		waitJS(`state.mapData.queries.length >= 1`))
	shot("5-map")
	if n := evalInt("on the map", `state.mapData.instances.filter(p => p.expert === "console-upload").length`); n != 6 {
		t.Errorf("%d of the uploaded expert's 6 instances on the map", n)
	}
	do("listed", chromedp.Click(`#tabs button[data-tab="library"]`), clearInput("#search"), chromedp.SendKeys("#search", "console-upload"),
		waitJS(`document.querySelectorAll('#experts tbody tr[data-name="console-upload"]').length === 1`))

	// Its page exports it (a zip through the API) and deletes it; the
	// browser's confirm dialog is answered yes by the test.
	do("export and delete", chromedp.Click(`#experts tbody tr[data-name="console-upload"]`),
		waitJS(`document.querySelector("#expert-detail h2") && document.querySelector("#expert-detail h2").textContent === "console-upload"`),
		chromedp.Click("#export-btn"), chromedp.Sleep(500),
		waitJS(`(window.confirm = () => true) && true`), chromedp.Click("#delete-btn"),
		waitJS(`document.querySelector("#expert-detail").hidden && !state.experts.some(m => m.name === "console-upload")`))
	if !evalBool("banner", `document.querySelector("#banner").hidden`) {
		t.Errorf("export or delete failed: %s", evalString("banner", `document.querySelector("#banner").textContent`))
	}
	if code := apiStatus(t, base, key, "GET", "/v1/experts/console-upload"); code != 404 {
		t.Errorf("after delete the API answers %d for the expert", code)
	}

	// A short training job whose progress moves.
	do("train", chromedp.Click(`#tabs button[data-tab="jobs"]`), chromedp.WaitVisible("#train-name"),
		chromedp.SendKeys("#train-name", "console-train"), chromedp.SendKeys("#train-task", "sst2"),
		chromedp.SetValue("#train-steps", "40"), chromedp.Click("#train-btn"),
		waitJS(`state.jobs.some(j => j.request.name === "console-train" && j.progress && j.progress.step >= 1)`))
	first := evalInt("progress", `state.jobs.find(j => j.request.name === "console-train").progress.step`)
	do("progress moves", waitJS(`(j => j.status === "succeeded" || (j.progress && j.progress.step > `+fmt.Sprint(first)+`))(state.jobs.find(j => j.request.name === "console-train"))`),
		waitJS(`document.querySelector("#job-list tbody tr.selected .step").textContent !== "—"`))
	if last := evalInt("progress", `state.jobs.find(j => j.request.name === "console-train").progress.step`); last <= first {
		t.Errorf("training progress did not move: step %d then %d", first, last)
	}
	shot("6-jobs")

	// Health, then a narrow window, then sign-out.
	do("health", chromedp.Click(`#tabs button[data-tab="health"]`), chromedp.WaitVisible("#h-queue"), waitJS(`state.health.length >= 2`))
	shot("7-health")
	do("narrow", chromedp.EmulateViewport(400, 800), chromedp.Click(`#tabs button[data-tab="library"]`),
		clearInput("#search"), chromedp.SendKeys("#search", "sst2"),
		chromedp.WaitVisible("#experts tbody tr"), chromedp.Click(`#experts tbody tr`), chromedp.WaitVisible("#expert-detail h2"))
	if evalBool("width", `document.documentElement.scrollWidth > window.innerWidth + 1`) {
		t.Error("the page is wider than a 400-px window")
	}
	shot("8-narrow")
	do("sign out", chromedp.Click("#logout"), chromedp.WaitVisible("#login"))
	if !evalBool("signed out", `document.querySelector("#app").hidden && sessionStorage.getItem("roe-key") === null`) {
		t.Error("after sign-out the data is still shown or the key kept")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(jsErrors) > 0 {
		t.Errorf("JavaScript errors:\n%s", strings.Join(jsErrors, "\n"))
	}
}

// routeAPI is the server's own decision for prompt, through the API.
func routeAPI(t *testing.T, base, key, prompt string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"model": "auto", "prompt": prompt, "routing": map[string]any{"top_k": 1}})
	req, _ := http.NewRequest("POST", base+"/v1/route", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var r struct {
		Roe struct {
			Fallback bool `json:"fallback"`
			Experts  []struct {
				Name string `json:"name"`
			} `json:"experts"`
		} `json:"roe"`
	}
	if err := json.NewDecoder(res.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, x := range r.Roe.Experts {
		names = append(names, x.Name)
	}
	return strings.Join(names, " + ")
}

// apiStatus is the status of one API call.
func apiStatus(t *testing.T, base, key, method, path string) int {
	t.Helper()
	req, _ := http.NewRequest(method, base+path, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

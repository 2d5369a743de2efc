package httpapi_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/webordinary/hermes"
)

// chromium returns the Chromium binary for browser tests
// (HERMES_TEST_CHROMIUM, else Debian's /usr/lib/chromium/chromium). Without
// one the test is skipped, loudly, unless HERMES_TEST_REQUIRE_EMULATORS=1
// (CI, where .ci/services.sh installs it) makes that a failure.
func chromium(t *testing.T) string {
	t.Helper()
	path := os.Getenv("HERMES_TEST_CHROMIUM")
	if path == "" {
		path = "/usr/lib/chromium/chromium"
	}
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("HERMES_TEST_REQUIRE_EMULATORS") == "1" {
			t.Fatalf("Chromium is required (HERMES_TEST_REQUIRE_EMULATORS=1) but %s is missing: %v (apt-get install -y chromium, or . .ci/services.sh)", path, err)
		}
		t.Skipf("SKIPPED: no Chromium at %s (apt-get install -y chromium, or set HERMES_TEST_CHROMIUM); the browser test of the approval page did not run", path)
	}
	return path
}

// browserContext starts a headless Chromium with a fresh profile.
func browserContext(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-component-update", true),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	return ctx
}

// waitTitle polls the document's title until it is want.
func waitTitle(t *testing.T, ctx context.Context, want string) {
	t.Helper()
	var got string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		title, err := chromedp.Run(ctx, chromedp.Title())
		if err == nil && title == want {
			return
		}
		got = title
	}
	t.Fatalf("page title %q, want %q", got, want)
}

// TestApprovalPageInBrowser opens an approval link in a real browser,
// clicks Approve, and checks that the execute job is queued and the page
// confirms it: the CSRF cookie and field, the form posting to itself under
// the base path (with the Origin: null that no-referrer gives), and the
// Content-Security-Policy allowing the page's own style.
func TestApprovalPageInBrowser(t *testing.T) {
	a := newTestAPI(t, withBasePath("/hermes"))
	runner := &countingRunner{}
	a.Router.Runner = runner
	ap, token := planApproval(t, a, "browser@example.com", xssPlan)
	ctx := browserContext(t)

	if err := chromedp.Do(ctx, chromedp.Navigate(a.URL+"/approvals/"+token)); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	waitTitle(t, ctx, "Approve this plan?")
	plan, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("plan")))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(plan) != xssPlan {
		t.Errorf("the page shows the plan as %q, want the text %q", plan, xssPlan)
	}
	injected, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("main script, main img").length`))
	if err != nil || injected != 0 {
		t.Errorf("elements injected by the plan: %d (%v)", injected, err)
	}
	// The inline style ran: the CSP's hash matches it.
	bg, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.getElementById("approve")).backgroundColor`))
	if err != nil || bg != "rgb(26, 127, 55)" {
		t.Errorf("the Approve button's background is %q (%v): the page's style was blocked", bg, err)
	}
	// Nothing happened yet.
	if got, _ := a.Store.GetApproval(t.Context(), ap.ID); got.Status != hermes.ApprovalPending {
		t.Fatalf("opening the page changed the approval: %s", got.Status)
	}
	if jobs := takeApprovalJobs(t, a); len(jobs) != 0 {
		t.Fatalf("opening the page queued jobs: %+v", jobs)
	}

	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("approve"))); err != nil {
		t.Fatalf("click: %v", err)
	}
	waitTitle(t, ctx, "Approved — it's on its way")
	msg, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("message")))
	if err != nil || !strings.Contains(msg, "You'll get the result by email") {
		t.Errorf("confirmation %q (%v)", msg, err)
	}
	job := takeApprovalJob(t, a, hermes.JobExecute)
	if job.ApprovalID != ap.ID || job.Plan != xssPlan {
		t.Errorf("execute job = %+v", job)
	}
	if runner.wakes == 0 {
		t.Errorf("the container was not woken")
	}
	if got, _ := a.Store.GetApproval(t.Context(), ap.ID); got.Status != hermes.ApprovalApproved || got.DecidedVia != hermes.ViaPage {
		t.Errorf("approval = %s via %q", got.Status, got.DecidedVia)
	}

	// Opening the link again says it was used.
	if err := chromedp.Do(ctx, chromedp.Navigate(a.URL+"/approvals/"+token)); err != nil {
		t.Fatal(err)
	}
	waitTitle(t, ctx, "This plan was approved already")
}

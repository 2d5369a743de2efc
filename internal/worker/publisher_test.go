package worker_test

import (
	"context"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/worker"
)

// publisher is a Publisher that records what it gets, and blocks until its
// context ends when block is set.
type publisher struct {
	block   bool
	started chan struct{} // closed when a blocking Publish starts
	link    string
	got     []string // the last publication's paths
}

func (p *publisher) Publish(ctx context.Context, clientID, projectID, threadID string, files map[string]string) (string, error) {
	p.got = slices.Sorted(maps.Keys(files))
	if p.block {
		if p.started != nil {
			close(p.started)
			p.started = nil
		}
		<-ctx.Done()
		return "", context.Cause(ctx)
	}
	return p.link, nil
}

var _ worker.Publisher = (*publisher)(nil)

// TestPublisherLinks: the result's link is the template's, else the
// publisher's; a Publisher takes the place of PreviewRoot.
func TestPublisherLinks(t *testing.T) {
	w, root := previewSetup(t, "title")
	pub := &publisher{link: "https://served.example/p/"}
	w.Publisher = pub
	res := apply(t, w, newJob(hermes.NewToken(), "Change the title to Stamps"))
	if !res.Success || res.PreviewURL != "https://served.example/p/" || !slices.Equal(pub.got, []string{"index.html"}) {
		t.Fatalf("result %+v, published %v", res, pub.got)
	}
	if _, err := os.Stat(root); err == nil {
		t.Error("PreviewRoot was written with a Publisher")
	}
	w.Project.PreviewURLTemplate = "https://edit.{client}.example.com/{thread}/"
	thread := hermes.NewToken()
	if res := apply(t, w, newJob(thread, "Now the title to Letters")); res.PreviewURL != "https://edit.amelia.example.com/"+thread+"/" {
		t.Errorf("with a template: %+v", res)
	}
}

// TestPublishInterruptedOrSlow: a newer job interrupting the publication
// gives an interrupted result; a publication over PublishTimeout fails
// the result, not the commit.
func TestPublishInterruptedOrSlow(t *testing.T) {
	w := setup(t, "title")
	w.Publisher = &publisher{block: true}
	w.PublishTimeout = 200 * time.Millisecond
	res := apply(t, w, newJob(hermes.NewToken(), "Change the title to Stamps"))
	if res.Success || res.Commit == "" || res.Type != hermes.ResultDone || !strings.Contains(res.Error, "publishing the preview failed: context deadline exceeded") {
		t.Errorf("slow publication: %+v", res)
	}

	started := make(chan struct{})
	w.Publisher = &publisher{block: true, started: started}
	w.PublishTimeout = time.Minute
	ctx, cancel := context.WithCancelCause(t.Context())
	go func() {
		<-started
		cancel(worker.ErrInterrupted)
	}()
	res, err := w.Apply(ctx, newJob(hermes.NewToken(), "Change the title to Letters"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Type != hermes.ResultInterrupted || !res.Interrupted || res.Success || res.Commit == "" || !strings.Contains(res.Summary, "while building the preview") {
		t.Errorf("interrupted publication: %+v", res)
	}
}

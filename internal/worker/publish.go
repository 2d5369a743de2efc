package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/webordinary/hermes"
)

// buildAndPublish runs the project's build after a successful commit and
// publishes the thread's preview with the Workspace's Publisher: the
// build's output directory, or without a build the checkout's tracked
// files. The result's link is the project's previewUrlTemplate filled in,
// else the one the publisher serves the preview at; with neither (S3 and
// no template) there is none, and a warning says so once. A failed build
// or publication makes the result unsuccessful (with the build's output
// tail); the commit stays reported.
func (w *Workspace) buildAndPublish(ctx context.Context, job *hermes.Job, res *hermes.ResultMessage) {
	log := w.log().With("job", job.ID, "thread", job.ThreadID)
	var files []string
	var src string
	if b := w.Project.Build; b != nil {
		if len(b.Command) == 0 || b.Command[0] == "" {
			res.Success, res.Error = false, "the project's build has no command"
			return
		}
		if err := w.excludeLocally(b.OutputDir); err != nil {
			log.WarnContext(ctx, "keeping the build's output out of commits", "err", err)
		}
		timeout := orDefault(w.BuildTimeout, DefaultBuildTimeout)
		bctx, cancel := context.WithTimeout(ctx, timeout)
		log.InfoContext(ctx, "building the preview", "command", b.Command[0])
		start := time.Now()
		p := w.runProcess(bctx, b.Command, agentEnv(job), "", true)
		timedOut := errors.Is(bctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
		cancel()
		if p.err != nil {
			log.ErrorContext(ctx, "the build failed", "err", p.err, "took", time.Since(start))
			switch {
			case ctx.Err() != nil && errors.Is(context.Cause(ctx), ErrInterrupted):
				res.Type, res.Interrupted, res.Success = hermes.ResultInterrupted, true, false
				res.Summary = strings.TrimSpace(noteInterruptedBuild + "\n\n" + res.Summary)
			case ctx.Err() != nil:
				res.Success, res.Error = false, "stopped while building the preview"
			case timedOut:
				res.Success, res.Error = false, fmt.Sprintf("the build did not finish within %s", timeout)
			default:
				res.Success, res.Error = false, "the build "+p.err.Error()
			}
			if p.stderr != "" && res.Type != hermes.ResultInterrupted {
				res.Error += ":\n" + p.stderr
			}
			return
		}
		dir, err := w.outputDir(b.OutputDir)
		if err != nil {
			res.Success, res.Error = false, err.Error()
			return
		}
		src = dir
	} else {
		// No build: the site is its committed files, as they are. Ignored
		// files (.env, node_modules) are never published.
		out, err := w.git(ctx, "ls-files", "-z", "--cached")
		if err != nil {
			res.Success, res.Error = false, "listing the files to publish: "+err.Error()
			return
		}
		for _, f := range strings.Split(out, "\x00") {
			if f != "" {
				files = append(files, filepath.FromSlash(f))
			}
		}
		src = w.Dir
	}
	pub := w.publisher()
	if pub == nil {
		if w.Project.PreviewURLTemplate != "" {
			res.PreviewURL = hermes.PreviewURL(w.Project, w.PublicURL, job.ThreadID, job.SessionID, job.UserID)
		}
		return
	}
	c, p := w.Project.ClientID, w.Project.ID
	if !hermes.ValidSlug(c) || !hermes.ValidSlug(p) || !hermes.ValidTokenID(job.ThreadID) {
		res.Success, res.Error = false, "the preview has no valid client, project and thread ids"
		return
	}
	set, err := previewFiles(src, files)
	if err == nil {
		pctx, cancel := context.WithTimeout(ctx, orDefault(w.PublishTimeout, DefaultPublishTimeout))
		var served string
		if served, err = pub.Publish(pctx, c, p, job.ThreadID, set); err == nil {
			res.PreviewURL = served
		}
		cancel()
	}
	switch {
	case err == nil:
	case ctx.Err() != nil && errors.Is(context.Cause(ctx), ErrInterrupted):
		res.Type, res.Interrupted, res.Success = hermes.ResultInterrupted, true, false
		res.Summary = strings.TrimSpace(noteInterruptedBuild + "\n\n" + res.Summary)
		return
	default:
		log.ErrorContext(ctx, "publishing the preview", "err", err)
		res.Success, res.Error = false, "publishing the preview failed: "+err.Error()
		return
	}
	if w.Project.PreviewURLTemplate != "" {
		res.PreviewURL = hermes.PreviewURL(w.Project, w.PublicURL, job.ThreadID, job.SessionID, job.UserID)
	}
	if res.PreviewURL == "" {
		w.noLink.Do(func() {
			log.WarnContext(ctx, "previews are published without a link: the project has no previewUrlTemplate", "project", c+"/"+p)
		})
	}
	log.InfoContext(ctx, "published the preview", "files", len(set))
}

// Publisher puts a thread's preview where it is served: DirPublisher, the
// embedded default, into a directory that serve serves; s3site.Publisher
// into an S3 bucket, on AWS.
type Publisher interface {
	// Publish makes the preview of the thread exactly files: each key is
	// a path in the preview (slash-separated and relative, never with a
	// .git element), its value the local regular file with the content.
	// What the previous publication had that files lacks is removed. The
	// ids are valid (hermes.ValidSlug, hermes.ValidTokenID). It returns the
	// link to the preview when the publisher knows where it is served, ""
	// otherwise (the project's previewUrlTemplate is then the only link).
	// A failure leaves the previous preview, possibly in part updated.
	Publish(ctx context.Context, clientID, projectID, threadID string, files map[string]string) (string, error)
}

// publisher is the Workspace's Publisher, else a DirPublisher on
// PreviewRoot, else none.
func (w *Workspace) publisher() Publisher {
	switch {
	case w.Publisher != nil:
		return w.Publisher
	case w.PreviewRoot != "":
		return &DirPublisher{Root: w.PreviewRoot, PublicURL: w.PublicURL}
	}
	return nil
}

// DirPublisher publishes previews into
// {Root}/{clientId}/{projectId}/{threadId}/, which Hermes serves at
// {PublicURL}/preview/{clientId}/{projectId}/{threadId}/.
type DirPublisher struct {
	Root      string
	PublicURL string // HERMES_PUBLIC_URL; see hermes.PreviewURL
}

var _ Publisher = (*DirPublisher)(nil)

// Publish copies the files into a temporary directory next to the
// thread's, which then replaces it, so that the served preview is always
// one complete publication. It returns the link Hermes serves it at.
func (d *DirPublisher) Publish(_ context.Context, clientID, projectID, threadID string, files map[string]string) (string, error) {
	if !hermes.ValidSlug(clientID) || !hermes.ValidSlug(projectID) || !hermes.ValidTokenID(threadID) {
		return "", errors.New("the preview has no valid client, project and thread ids")
	}
	if err := replaceDir(filepath.Join(d.Root, clientID, projectID, threadID), files); err != nil {
		return "", err
	}
	return hermes.PreviewURL(&hermes.Project{ClientID: clientID, ID: projectID}, d.PublicURL, threadID, "", ""), nil
}

// outputDir resolves the build's output directory: relative to the
// checkout, inside it (symbolic links resolved) and not in .git.
func (w *Workspace) outputDir(rel string) (string, error) {
	if rel == "" || filepath.IsAbs(rel) || !filepath.IsLocal(filepath.FromSlash(rel)) {
		return "", fmt.Errorf("the build's output directory %q is not a relative path inside the repository", rel)
	}
	root, err := filepath.EvalSymlinks(w.Dir)
	if err != nil {
		return "", err
	}
	dir, err := filepath.EvalSymlinks(filepath.Join(w.Dir, filepath.FromSlash(rel)))
	if err != nil {
		return "", fmt.Errorf("the build's output directory %q: %w", rel, errors.Unwrap(err))
	}
	inside, err := filepath.Rel(root, dir)
	if err != nil || !filepath.IsLocal(inside) && inside != "." {
		return "", fmt.Errorf("the build's output directory %q is outside the repository", rel)
	}
	if first, _, _ := strings.Cut(filepath.ToSlash(inside), "/"); first == ".git" {
		return "", fmt.Errorf("the build's output directory %q is inside .git", rel)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("the build's output directory %q is not a directory", rel)
	}
	return dir, nil
}

// previewFiles is the set of files to publish from src: the listed files
// (relative paths), or every file under src when files is nil. .git is
// never in it; a symbolic link is published as the file it points to when
// that is a regular file inside src (and not in .git), and left out
// otherwise, as is anything else that is not a regular file. The set maps
// each slash-separated path to the file to read.
func previewFiles(src string, files []string) (map[string]string, error) {
	root, err := filepath.EvalSymlinks(src)
	if err != nil {
		return nil, err
	}
	if files == nil {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Name() == ".git" {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.IsDir() {
				rel, err := filepath.Rel(root, p)
				if err != nil {
					return err
				}
				files = append(files, rel)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	set := make(map[string]string, len(files))
	for _, rel := range files {
		if hasGitElement(rel) || !filepath.IsLocal(rel) {
			continue
		}
		p, err := regularFile(root, rel)
		if err != nil {
			return nil, err
		}
		if p != "" {
			set[filepath.ToSlash(rel)] = p
		}
	}
	return set, nil
}

// regularFile is the file to publish for root/rel: itself when it is a
// regular file, the regular file inside root (not in .git) that a symbolic
// link points to, and "" for anything else or a file removed meanwhile.
func regularFile(root, rel string) (string, error) {
	p := filepath.Join(root, rel)
	fi, err := os.Lstat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil // listed, but removed meanwhile
		}
		return "", err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return "", nil // dangling
		}
		inside, err := filepath.Rel(root, real)
		if err != nil || !filepath.IsLocal(inside) || hasGitElement(inside) {
			return "", nil
		}
		p = real
		if fi, err = os.Stat(p); err != nil {
			return "", nil
		}
	}
	if !fi.Mode().IsRegular() {
		return "", nil
	}
	return p, nil
}

// replaceDir writes files (see previewFiles) to the directory target
// atomically: into a temporary directory next to it, which then replaces
// it.
func replaceDir(target string, files map[string]string) error {
	parent, base := filepath.Dir(target), filepath.Base(target)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	// Leftovers of a publication that died half way.
	if old, err := filepath.Glob(filepath.Join(parent, "."+base+".*")); err == nil {
		for _, o := range old {
			os.RemoveAll(o)
		}
	}
	tmp, err := os.MkdirTemp(parent, "."+base+".new-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // gone by then unless something failed
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	for rel, src := range files {
		if err := copyFile(src, filepath.Join(tmp, filepath.FromSlash(rel))); err != nil {
			return err
		}
	}
	old := filepath.Join(parent, "."+base+".old-"+hermes.NewToken())
	hadOld := false
	if _, err := os.Lstat(target); err == nil {
		if err := os.Rename(target, old); err != nil {
			return err
		}
		hadOld = true
	}
	if err := os.Rename(tmp, target); err != nil {
		if hadOld {
			os.Rename(old, target)
		}
		return err
	}
	if hadOld {
		return os.RemoveAll(old)
	}
	return nil
}

// hasGitElement reports whether a relative path has a .git element.
func hasGitElement(rel string) bool {
	for _, e := range strings.Split(filepath.ToSlash(rel), "/") {
		if e == ".git" {
			return true
		}
	}
	return false
}

// copyFile copies the file src to dst (mode 0644), making dst's directory.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, in); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// excludeLocally adds the build's output directory to .git/info/exclude
// (the checkout's own ignore list, never committed), so that the build's
// output is not committed with the next change unless the repository
// tracks it.
func (w *Workspace) excludeLocally(outputDir string) error {
	if outputDir == "" || strings.ContainsAny(outputDir, "\n\r*?[!#\\") {
		return nil
	}
	line := "/" + strings.Trim(filepath.ToSlash(filepath.Clean(outputDir)), "/") + "/"
	if line == "//" || line == "/./" {
		return nil // the whole checkout
	}
	p := filepath.Join(w.Dir, ".git", "info", "exclude")
	b, err := os.ReadFile(p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if strings.TrimSpace(l) == line {
			return nil
		}
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if len(b) > 0 && !strings.HasSuffix(string(b), "\n") {
		b = append(b, '\n')
	}
	b = append(b, "# the build's output (hermes worker)\n"+line+"\n"...)
	return os.WriteFile(p, b, 0o644)
}

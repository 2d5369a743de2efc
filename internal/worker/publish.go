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
// publishes the thread's preview: the build's output directory, or without
// a build the checkout's tracked files. A failed build or publication makes
// the result unsuccessful (with the build's output tail); the commit stays
// reported.
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
	if w.PreviewRoot == "" {
		if w.Project.PreviewURLTemplate != "" {
			res.PreviewURL = hermes.PreviewURL(w.Project, w.PublicURL, job.ThreadID, job.SessionID, job.UserID)
		}
		return
	}
	target, err := w.previewDir(job)
	if err != nil {
		res.Success, res.Error = false, err.Error()
		return
	}
	if err := publish(src, files, target); err != nil {
		log.ErrorContext(ctx, "publishing the preview", "err", err)
		res.Success, res.Error = false, "publishing the preview failed: "+err.Error()
		return
	}
	res.PreviewURL = hermes.PreviewURL(w.Project, w.PublicURL, job.ThreadID, job.SessionID, job.UserID)
	log.InfoContext(ctx, "published the preview", "dir", target)
}

// previewDir is the thread's preview directory under PreviewRoot.
func (w *Workspace) previewDir(job *hermes.Job) (string, error) {
	c, p := w.Project.ClientID, w.Project.ID
	if !hermes.ValidSlug(c) || !hermes.ValidSlug(p) || !hermes.ValidTokenID(job.ThreadID) {
		return "", errors.New("the preview has no valid client, project and thread ids")
	}
	return filepath.Join(w.PreviewRoot, c, p, job.ThreadID), nil
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

// publish copies src — the listed files, or every file when files is nil —
// to target atomically: into a temporary directory next to target, which
// then replaces it. .git is never copied; a symbolic link is copied as the
// file it points to when that is a regular file inside src, and left out
// otherwise.
func publish(src string, files []string, target string) error {
	root, err := filepath.EvalSymlinks(src)
	if err != nil {
		return err
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
			return err
		}
	}
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
	for _, rel := range files {
		if hasGitElement(rel) {
			continue
		}
		if err := copyFile(root, rel, tmp); err != nil {
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

// copyFile copies root/rel to dst/rel (mode 0644): a regular file, or the
// regular file inside root a symbolic link points to. Anything else is left
// out.
func copyFile(root, rel, dst string) error {
	p := filepath.Join(root, rel)
	fi, err := os.Lstat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // listed, but removed meanwhile
		}
		return err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return nil // dangling
		}
		inside, err := filepath.Rel(root, real)
		if err != nil || !filepath.IsLocal(inside) || hasGitElement(inside) {
			return nil
		}
		p = real
		if fi, err = os.Stat(p); err != nil {
			return nil
		}
	}
	if !fi.Mode().IsRegular() {
		return nil
	}
	in, err := os.Open(p)
	if err != nil {
		return err
	}
	defer in.Close()
	out := filepath.Join(dst, rel)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
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

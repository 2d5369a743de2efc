// Command agent is the command agent of the worker tests; its first argument
// selects what it does with the instruction it reads on stdin.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err)
	}
	text := string(in)
	switch os.Args[1] {
	case "title": // set index.html's <title> to the instruction's last word
		b, err := os.ReadFile("index.html")
		if err != nil {
			fail(err)
		}
		f := strings.Fields(text)
		title := f[len(f)-1]
		b = regexp.MustCompile(`<title>[^<]*</title>`).ReplaceAll(b, []byte("<title>"+title+"</title>"))
		if err := os.WriteFile("index.html", b, 0o644); err != nil {
			fail(err)
		}
		fmt.Printf("  Set the page title to %q.\n\n", title)
	case "echo": // keep what arrived
		env := map[string]string{}
		for _, kv := range os.Environ() {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		b, _ := json.Marshal(map[string]any{"stdin": text, "env": env, "args": os.Args[1:]})
		if err := os.WriteFile("received.json", b, 0o644); err != nil {
			fail(err)
		}
		fmt.Println("echoed")
	case "noop":
		fmt.Println("Nothing to change.")
	case "fail": // half the work, then a failure
		if err := os.WriteFile("partial.txt", []byte("half done\n"), 0o644); err != nil {
			fail(err)
		}
		fmt.Println("started")
		fmt.Fprintln(os.Stderr, "boom: could not finish")
		os.Exit(3)
	case "sleep": // half the work, a child, and no end; SIGTERM ignored
		signal.Ignore(syscall.SIGTERM)
		if err := os.WriteFile("partial.txt", []byte("half done\n"), 0o644); err != nil {
			fail(err)
		}
		exe, _ := os.Executable()
		child := exec.Command(exe, "child")
		if err := child.Start(); err != nil {
			fail(err)
		}
		if err := os.WriteFile("child.pid", []byte(strconv.Itoa(child.Process.Pid)), 0o644); err != nil {
			fail(err)
		}
		time.Sleep(time.Minute)
	case "planner": // changes files whatever the mode, and says which mode it ran in
		os.WriteFile("index.html", []byte("<title>scribbled</title>\n"), 0o644)
		os.WriteFile("stray.txt", []byte("stray\n"), 0o644)
		os.MkdirAll("newdir", 0o755)
		os.WriteFile("newdir/x.txt", []byte("x\n"), 0o644)
		fmt.Printf("Plan (mode %s):\n1. Change the title.\n", os.Getenv("HERMES_MODE"))
	case "multi": // by the instruction's first word: wait (partial work, then wait to be killed), else the title from the last word
		f := strings.Fields(text)
		if f[0] == "wait" {
			if err := os.WriteFile("partial-"+f[len(f)-1]+".txt", []byte("half done\n"), 0o644); err != nil {
				fail(err)
			}
			time.Sleep(time.Minute)
		}
		setTitle(f[len(f)-1])
	case "gate": // partial work, then wait (at most a minute) for .git/hermes-test-gate, then the title from the last word
		f := strings.Fields(text)
		if err := os.WriteFile("partial-"+f[len(f)-1]+".txt", []byte("half done\n"), 0o644); err != nil {
			fail(err)
		}
		for i := 0; i < 600; i++ {
			if _, err := os.Stat(".git/hermes-test-gate"); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		setTitle(f[len(f)-1])
	case "build": // the build: dist/ from index.html, plus a file named after the page's title
		b, err := os.ReadFile("index.html")
		if err != nil {
			fail(err)
		}
		title := regexp.MustCompile(`<title>([^<]*)</title>`).FindSubmatch(b)
		os.RemoveAll("dist")
		if err := os.MkdirAll("dist/css", 0o755); err != nil {
			fail(err)
		}
		os.WriteFile("dist/index.html", b, 0o644)
		os.WriteFile("dist/css/site.css", []byte("body{}\n"), 0o644)
		os.WriteFile("dist/built-"+string(title[1])+".txt", []byte("built\n"), 0o644)
		fmt.Println("built")
	case "buildfail":
		fmt.Println("compiling…")
		fmt.Fprintln(os.Stderr, "error: src/index.astro:3: unexpected }")
		os.Exit(2)
	case "child":
		signal.Ignore(syscall.SIGTERM)
		time.Sleep(time.Minute)
	}
}

func setTitle(title string) {
	b, err := os.ReadFile("index.html")
	if err != nil {
		fail(err)
	}
	b = regexp.MustCompile(`<title>[^<]*</title>`).ReplaceAll(b, []byte("<title>"+title+"</title>"))
	if err := os.WriteFile("index.html", b, 0o644); err != nil {
		fail(err)
	}
	fmt.Printf("Set the page title to %q.\n", title)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(2)
}

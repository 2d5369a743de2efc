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
	case "child":
		signal.Ignore(syscall.SIGTERM)
		time.Sleep(time.Minute)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(2)
}

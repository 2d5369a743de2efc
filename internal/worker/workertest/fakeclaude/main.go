// Command fakeclaude stands in for the Claude Code CLI (`claude`) in tests.
// It accepts the print-mode command line the worker uses,
//
//	claude -p --output-format json [--model M] [--resume SESSION] [--permission-mode MODE] [other options]
//
// reads the prompt from standard input, and prints one result object the way
// `claude -p --output-format json` does:
//
//	{"type":"result","subtype":"success","is_error":false,"duration_ms":…,"duration_api_ms":…,
//	 "num_turns":…,"result":"…","stop_reason":"end_turn","session_id":"…","total_cost_usd":…,
//	 "usage":{…},"permission_denials":[],"uuid":"…"}
//
// What it does with the prompt:
//
//   - --permission-mode plan: changes nothing and answers with a plan.
//   - otherwise it sets the <title> of index.html in the working directory:
//     to the text after the last "title to " in the prompt, else to the
//     prompt's first line.
//   - a prompt containing "FAKE:error" fails: subtype
//     "error_during_execution", is_error true, exit status 1.
//   - a prompt containing "FAKE:sleep" writes partial.txt and then waits to
//     be killed.
//
// Sessions: a new run gets a new session id; --resume SESSION continues a
// session this fake created (the result starts with "Resumed session
// SESSION.") and keeps its id; an unknown one fails like the real CLI ("No
// conversation found with session ID: …" on standard error, exit status 1).
// Sessions and a log of every call (calls.jsonl: arguments, prompt,
// working directory and environment) are kept next to the executable.
package main

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

func main() {
	exe, err := os.Executable()
	if err != nil {
		die(err.Error())
	}
	state := filepath.Dir(exe)
	args := os.Args[1:]
	var (
		print, resume, mode, format string
		positional                  []string
	)
	for i := 0; i < len(args); i++ {
		a := args[i]
		value := func() string {
			if i+1 >= len(args) {
				die(fmt.Sprintf("error: option '%s <value>' argument missing", a))
			}
			i++
			return args[i]
		}
		switch a {
		case "-p", "--print":
			print = "yes"
		case "--output-format":
			format = value()
		case "--resume", "-r":
			resume = value()
		case "--permission-mode":
			mode = value()
		case "--model", "--allowedTools", "--allowed-tools", "--disallowedTools", "--max-turns", "--append-system-prompt":
			value()
		case "--verbose", "--dangerously-skip-permissions":
		default:
			if strings.HasPrefix(a, "-") {
				die(fmt.Sprintf("error: unknown option '%s'", a))
			}
			positional = append(positional, a)
		}
	}
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		die(err.Error())
	}
	prompt := strings.TrimSpace(string(in))
	if len(positional) > 0 {
		prompt = strings.TrimSpace(strings.Join(positional, " ") + "\n" + prompt)
	}
	record(state, args, string(in))
	switch {
	case print == "":
		die("fakeclaude: only print mode (-p) is faked")
	case format != "json":
		die("fakeclaude: only --output-format json is faked")
	case prompt == "":
		die("Error: Input must be provided either through stdin or as a prompt argument when using --print")
	case mode != "" && mode != "plan" && mode != "acceptEdits" && mode != "bypassPermissions" && mode != "default" && mode != "dontAsk":
		die(fmt.Sprintf("error: option '--permission-mode <mode>' argument '%s' is invalid", mode))
	}
	sessions := filepath.Join(state, "sessions")
	session, text := newID(), ""
	if resume != "" {
		if _, err := os.Stat(filepath.Join(sessions, filepath.Base(resume))); err != nil {
			die("No conversation found with session ID: " + resume)
		}
		session, text = resume, "Resumed session "+resume+". "
	}
	if err := os.MkdirAll(sessions, 0o755); err != nil {
		die(err.Error())
	}
	f, err := os.OpenFile(filepath.Join(sessions, session), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		die(err.Error())
	}
	fmt.Fprintf(f, "%s\n", prompt)
	f.Close()

	title := titleOf(prompt)
	subtype, isError := "success", false
	switch {
	case strings.Contains(prompt, "FAKE:error"):
		subtype, isError = "error_during_execution", true
		text += "The edit failed half way."
	case strings.Contains(prompt, "FAKE:sleep"):
		if err := os.WriteFile("partial.txt", []byte("half done\n"), 0o644); err != nil {
			die(err.Error())
		}
		time.Sleep(10 * time.Minute)
	case mode == "plan":
		text += fmt.Sprintf("Plan:\n1. Set the title to %s in index.html.\n2. Change nothing else.", title)
	default:
		b, err := os.ReadFile("index.html")
		if err != nil {
			die(err.Error())
		}
		b = regexp.MustCompile(`<title>[^<]*</title>`).ReplaceAll(b, []byte("<title>"+title+"</title>"))
		if err := os.WriteFile("index.html", b, 0o644); err != nil {
			die(err.Error())
		}
		text += fmt.Sprintf("Set the page title to %q.", title)
	}
	out, _ := json.Marshal(map[string]any{
		"type": "result", "subtype": subtype, "is_error": isError,
		"duration_ms": 2817, "duration_api_ms": 2745, "num_turns": 3,
		"result": text, "stop_reason": "end_turn", "session_id": session, "total_cost_usd": 0.0123,
		"usage": map[string]any{"input_tokens": 12, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
			"output_tokens": 42, "server_tool_use": map[string]any{"web_search_requests": 0}, "service_tier": "standard"},
		"permission_denials": []any{}, "uuid": newID(),
	})
	os.Stdout.Write(append(out, '\n'))
	if isError {
		os.Exit(1)
	}
}

// titleOf is the text after the last "title to " of the prompt, else its
// first line, without quotes and a final period.
func titleOf(prompt string) string {
	line := prompt
	if i := strings.LastIndex(strings.ToLower(prompt), "title to "); i >= 0 {
		line = prompt[i+len("title to "):]
	}
	line, _, _ = strings.Cut(line, "\n")
	line = strings.TrimSpace(line)
	line = strings.TrimSuffix(strings.TrimSuffix(line, " in index.html."), ".")
	return strings.Trim(line, `"' `)
}

// record appends the call to calls.jsonl.
func record(state string, args []string, stdin string) {
	env := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	wd, _ := os.Getwd()
	b, _ := json.Marshal(map[string]any{"args": args, "stdin": stdin, "dir": wd, "env": env})
	f, err := os.OpenFile(filepath.Join(state, "calls.jsonl"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		die(err.Error())
	}
	defer f.Close()
	if _, err := f.Write(append(b, '\n')); err != nil {
		die(err.Error())
	}
}

// newID is a random UUID (version 4), like the CLI's session ids.
func newID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func die(msg string) {
	fmt.Fprintln(os.Stderr, msg)
	os.Exit(1)
}

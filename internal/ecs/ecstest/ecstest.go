// Package ecstest is a fake of Amazon ECS for tests: an HTTP server that
// speaks the real ECS wire protocol (AWS JSON 1.1: POST /, X-Amz-Target
// AmazonEC2ContainerServiceV20141113.<Op>, JSON bodies and errors shaped
// like the API's) for RunTask, DescribeTasks, StopTask and
// DescribeClusters, and that runs each task as a local process: the task
// definition's command (a binary given to the fake, e.g. `hermes worker`)
// with the definition's environment plus the container override's
// environment. A task is
// PROVISIONING when RunTask answers, PENDING until its process starts,
// RUNNING while the process lives and STOPPED with the exit code after;
// StopTask sends the process SIGTERM. No emulator of ECS exists; this one
// keeps to the shapes of the real API so that the same runner code works
// against AWS.
//
// Faults for resilience tests: Down makes every call answer 500
// ServerException until Up; Throttle answers ThrottlingException to the
// next n calls; FailStarts makes the next RunTask calls report a failure
// in the response's failures array instead of starting a task; Kill stops
// a task from outside (a Spot interruption, an out-of-memory kill).
package ecstest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// TargetPrefix is the X-Amz-Target prefix of the ECS API.
const TargetPrefix = "AmazonEC2ContainerServiceV20141113."

// Account and Region appear in the ARNs the fake makes.
const (
	Account = "123456789012"
	Region  = "us-east-1"
)

// Config describes the one cluster and task definition the fake knows.
type Config struct {
	Cluster        string // cluster name
	TaskDefinition string // family; "family", "family:N" and its ARN are accepted
	ContainerName  string // the task definition's essential container
	// Command is the container's command: argv of a local program (the
	// hermes binary and "worker").
	Command []string
	// Env is the task definition's environment (the image's and the
	// definition's variables): PATH, HOME, and in tests the data directory
	// the tasks share with Hermes. Overrides come after it.
	Env []string
	// Dir is the processes' working directory ("" for the test's).
	Dir string
	// Output receives the processes' standard output and error (the
	// task's logs); io.Discard when nil.
	Output io.Writer
	// StartDelay is how long a task stays PENDING before its process
	// starts (an image pull).
	StartDelay time.Duration
}

// Server is the fake ECS endpoint. URL is its base endpoint.
type Server struct {
	URL string
	cfg Config
	srv *httptest.Server

	mu       sync.Mutex
	tasks    map[string]*task // by ARN
	order    []string
	tokens   map[string][]string // RunTask clientToken → task ARNs
	calls    map[string]int
	runs     []json.RawMessage // RunTask request bodies, in order
	down     bool
	throttle int
	failRuns []string // reasons of the next RunTask failures
	closed   bool
	wg       sync.WaitGroup
}

type task struct {
	arn, group, startedBy        string
	desired, last                string
	stopCode, stoppedReason      string
	exitCode                     *int
	createdAt, startedAt         time.Time
	stoppedAt                    time.Time
	overrides                    json.RawMessage
	tags                         []tag
	capacityProvider, launchType string
	cmd                          *exec.Cmd
	done                         chan struct{}
	stopAsked                    bool
}

type tag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// New starts the fake; it is closed (its tasks' processes terminated and
// waited for) when the test ends.
func New(t interface {
	Helper()
	Cleanup(func())
}, cfg Config) *Server {
	t.Helper()
	s := &Server{cfg: cfg, tasks: map[string]*task{}, tokens: map[string][]string{}, calls: map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	s.URL = s.srv.URL
	t.Cleanup(s.Close)
	return s
}

// Close terminates every running task (SIGTERM, SIGKILL after 5 s), waits
// for them and stops the server.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	var live []*task
	for _, tk := range s.tasks {
		if tk.cmd != nil && tk.last != "STOPPED" {
			live = append(live, tk)
		}
	}
	s.mu.Unlock()
	for _, tk := range live {
		_ = tk.cmd.Process.Signal(syscall.SIGTERM)
		go func() {
			select {
			case <-tk.done:
			case <-time.After(5 * time.Second):
				_ = tk.cmd.Process.Kill()
			}
		}()
	}
	s.wg.Wait()
	s.srv.Close()
}

// Down makes every call answer 500 ServerException (ECS unreachable in
// effect) until Up.
func (s *Server) Down() { s.mu.Lock(); s.down = true; s.mu.Unlock() }

// Up ends Down.
func (s *Server) Up() { s.mu.Lock(); s.down = false; s.mu.Unlock() }

// Throttle answers 400 ThrottlingException to the next n calls.
func (s *Server) Throttle(n int) { s.mu.Lock(); s.throttle = n; s.mu.Unlock() }

// FailStarts makes the next n RunTask calls start nothing and report
// reason in the response's failures (as ECS does when capacity is short).
func (s *Server) FailStarts(n int, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failRuns = append(s.failRuns, reason)
	}
}

// Calls is how many calls of op (RunTask, DescribeTasks, StopTask) the
// fake answered, faults included.
func (s *Server) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// RunRequests returns the bodies of the RunTask requests received (those
// that passed the fault injection), oldest first.
func (s *Server) RunRequests() []json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.runs)
}

// Tasks returns the ARNs of the tasks started, oldest first.
func (s *Server) Tasks() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.order)
}

// Status returns a task's last status ("" when unknown).
func (s *Server) Status(arn string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tk := s.tasks[arn]; tk != nil {
		return tk.last
	}
	return ""
}

// Running returns the ARNs of the tasks whose process is alive.
func (s *Server) Running() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, arn := range s.order {
		if s.tasks[arn].last == "RUNNING" {
			out = append(out, arn)
		}
	}
	return out
}

// Kill stops a task from outside ECS's API (a Spot interruption, an
// out-of-memory kill): its process is killed and the task reports
// stopCode and reason.
func (s *Server) Kill(arn, stopCode, reason string) {
	s.mu.Lock()
	tk := s.tasks[arn]
	if tk == nil || tk.last == "STOPPED" {
		s.mu.Unlock()
		return
	}
	tk.desired, tk.stopCode, tk.stoppedReason, tk.stopAsked = "STOPPED", stopCode, reason, true
	cmd := tk.cmd
	s.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Kill()
		<-tk.done
	}
}

// apiError is an error answer of the API.
type apiError struct {
	status int
	typ    string
	msg    string
}

func (e *apiError) Error() string { return e.typ + ": " + e.msg }

func invalid(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, "InvalidParameterException", fmt.Sprintf(format, args...)}
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), TargetPrefix)
	if r.Method != http.MethodPost || r.URL.Path != "/" || !ok {
		writeError(w, &apiError{http.StatusBadRequest, "UnknownOperationException", ""})
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-amz-json-1.1") {
		writeError(w, &apiError{http.StatusBadRequest, "SerializationException", "unexpected content type " + ct})
		return
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		writeError(w, &apiError{http.StatusBadRequest, "MissingAuthenticationTokenException", "Missing Authentication Token"})
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.calls[op]++
	fault := (*apiError)(nil)
	switch {
	case s.down:
		fault = &apiError{http.StatusInternalServerError, "ServerException", "Service unavailable (injected fault)"}
	case s.throttle > 0:
		s.throttle--
		fault = &apiError{http.StatusBadRequest, "ThrottlingException", "Rate exceeded"}
	}
	s.mu.Unlock()
	if fault != nil {
		writeError(w, fault)
		return
	}
	var out any
	switch op {
	case "RunTask":
		out, err = s.runTask(body)
	case "DescribeTasks":
		out, err = s.describeTasks(body)
	case "StopTask":
		out, err = s.stopTask(body)
	case "DescribeClusters":
		out, err = s.describeClusters(body)
	default:
		err = &apiError{http.StatusBadRequest, "UnknownOperationException", ""}
	}
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			ae = &apiError{http.StatusInternalServerError, "ServerException", err.Error()}
		}
		writeError(w, ae)
		return
	}
	b, _ := json.Marshal(out)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Requestid", newID())
	_, _ = w.Write(b)
}

func writeError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Requestid", newID())
	w.WriteHeader(e.status)
	b, _ := json.Marshal(map[string]string{"__type": e.typ, "message": e.msg})
	_, _ = w.Write(b)
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// cluster checks a request's cluster (name or ARN; default "default").
func (s *Server) cluster(c string) error {
	if c == "" {
		c = "default"
	}
	if c != s.cfg.Cluster && c != s.clusterARN() {
		return &apiError{http.StatusBadRequest, "ClusterNotFoundException", "Cluster not found."}
	}
	return nil
}

// describeClusters answers for the one cluster the fake knows (ACTIVE,
// with its running and pending task counts); others are failures with
// reason MISSING, as ECS reports them.
func (s *Server) describeClusters(body []byte) (any, error) {
	var in struct{ Clusters []string }
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, invalid("%v", err)
	}
	if len(in.Clusters) == 0 {
		in.Clusters = []string{"default"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	running, pending := 0, 0
	for _, tk := range s.tasks {
		switch tk.last {
		case "RUNNING":
			running++
		case "PROVISIONING", "PENDING":
			pending++
		}
	}
	clusters, failures := []map[string]any{}, []failure{}
	for _, c := range in.Clusters {
		if s.cluster(c) != nil {
			failures = append(failures, failure{Arn: fmt.Sprintf("arn:aws:ecs:%s:%s:cluster/%s", Region, Account, c), Reason: "MISSING"})
			continue
		}
		clusters = append(clusters, map[string]any{
			"clusterArn": s.clusterARN(), "clusterName": s.cfg.Cluster, "status": "ACTIVE",
			"runningTasksCount": running, "pendingTasksCount": pending, "activeServicesCount": 0,
		})
	}
	return map[string]any{"clusters": clusters, "failures": failures}, nil
}

func (s *Server) clusterARN() string {
	return fmt.Sprintf("arn:aws:ecs:%s:%s:cluster/%s", Region, Account, s.cfg.Cluster)
}

func (s *Server) taskDefARN() string {
	return fmt.Sprintf("arn:aws:ecs:%s:%s:task-definition/%s:1", Region, Account, s.cfg.TaskDefinition)
}

type kv struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type runTaskInput struct {
	Cluster                  string `json:"cluster"`
	TaskDefinition           string `json:"taskDefinition"`
	Count                    *int   `json:"count"`
	LaunchType               string `json:"launchType"`
	CapacityProviderStrategy []struct {
		CapacityProvider string `json:"capacityProvider"`
		Weight           int    `json:"weight"`
		Base             int    `json:"base"`
	} `json:"capacityProviderStrategy"`
	NetworkConfiguration *struct {
		AwsvpcConfiguration *struct {
			Subnets        []string `json:"subnets"`
			SecurityGroups []string `json:"securityGroups"`
			AssignPublicIP string   `json:"assignPublicIp"`
		} `json:"awsvpcConfiguration"`
	} `json:"networkConfiguration"`
	Overrides *struct {
		ContainerOverrides []struct {
			Name        string   `json:"name"`
			Command     []string `json:"command"`
			Environment []kv     `json:"environment"`
		} `json:"containerOverrides"`
	} `json:"overrides"`
	Group       string `json:"group"`
	StartedBy   string `json:"startedBy"`
	ClientToken string `json:"clientToken"`
	Tags        []tag  `json:"tags"`
}

func (s *Server) runTask(body []byte) (any, error) {
	var in runTaskInput
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, &apiError{http.StatusBadRequest, "SerializationException", err.Error()}
	}
	if err := s.cluster(in.Cluster); err != nil {
		return nil, err
	}
	td := in.TaskDefinition
	if td == "" {
		return nil, invalid("TaskDefinition can not be blank.")
	}
	if fam, _, _ := strings.Cut(td, ":"); fam != s.cfg.TaskDefinition && td != s.taskDefARN() {
		return nil, &apiError{http.StatusBadRequest, "ClientException", "Unable to describe task definition."}
	}
	if in.LaunchType != "" && len(in.CapacityProviderStrategy) > 0 {
		return nil, invalid("Specifying both a launch type and capacity provider strategy is not supported. Remove one and try again.")
	}
	if in.LaunchType != "" && in.LaunchType != "FARGATE" && in.LaunchType != "EC2" && in.LaunchType != "EXTERNAL" {
		return nil, invalid("launchType should be one of [EC2,FARGATE,EXTERNAL]")
	}
	for _, cp := range in.CapacityProviderStrategy {
		if cp.CapacityProvider != "FARGATE" && cp.CapacityProvider != "FARGATE_SPOT" {
			return nil, invalid("The specified capacity provider %s is not in an ACTIVE state. Specify a valid capacity provider and try again.", cp.CapacityProvider)
		}
	}
	if in.NetworkConfiguration == nil || in.NetworkConfiguration.AwsvpcConfiguration == nil {
		return nil, invalid("Network Configuration must be provided when networkMode 'awsvpc' is specified.")
	}
	vpc := in.NetworkConfiguration.AwsvpcConfiguration
	if len(vpc.Subnets) == 0 {
		return nil, invalid("subnets can not be empty.")
	}
	if len(vpc.Subnets) > 16 || len(vpc.SecurityGroups) > 5 {
		return nil, invalid("too many subnets or security groups")
	}
	if vpc.AssignPublicIP != "" && vpc.AssignPublicIP != "ENABLED" && vpc.AssignPublicIP != "DISABLED" {
		return nil, invalid("assignPublicIp should be one of [ENABLED,DISABLED]")
	}
	if in.Count != nil && (*in.Count < 1 || *in.Count > 10) {
		return nil, invalid("count must be between 1 and 10")
	}
	if len(in.StartedBy) > 128 || len(in.Group) > 255 || len(in.ClientToken) > 64 {
		return nil, invalid("startedBy, group or clientToken too long")
	}
	if len(in.Tags) > 50 {
		return nil, invalid("too many tags")
	}
	for _, t := range in.Tags {
		if t.Key == "" || len(t.Key) > 128 || len(t.Value) > 256 || strings.HasPrefix(strings.ToLower(t.Key), "aws:") {
			return nil, invalid("Tag key %q is not valid", t.Key)
		}
	}
	var env []string
	var command []string
	var overrides json.RawMessage
	if in.Overrides != nil {
		for _, co := range in.Overrides.ContainerOverrides {
			if co.Name != s.cfg.ContainerName {
				return nil, invalid("Override for container named %s is not a container in the TaskDefinition.", co.Name)
			}
			for _, e := range co.Environment {
				env = append(env, e.Name+"="+e.Value)
			}
			command = co.Command
		}
		overrides, _ = json.Marshal(in.Overrides)
	} else {
		overrides = json.RawMessage(`{"containerOverrides":[],"inferenceAcceleratorOverrides":[]}`)
	}
	if len(overrides) > 8192 {
		return nil, invalid("Container Overrides length must be at most 8192")
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, &apiError{http.StatusInternalServerError, "ServerException", "shutting down"}
	}
	s.runs = append(s.runs, json.RawMessage(slices.Clone(body)))
	if in.ClientToken != "" {
		if arns, ok := s.tokens[in.ClientToken]; ok { // an idempotent retry
			return s.runOutput(arns, nil), nil
		}
	}
	if len(s.failRuns) > 0 {
		reason := s.failRuns[0]
		s.failRuns = s.failRuns[1:]
		return map[string]any{"tasks": []any{}, "failures": []failure{{Arn: s.clusterARN(), Reason: reason}}}, nil
	}
	n := 1
	if in.Count != nil {
		n = *in.Count
	}
	var arns []string
	for range n {
		tk := &task{
			arn:   fmt.Sprintf("arn:aws:ecs:%s:%s:task/%s/%s", Region, Account, s.cfg.Cluster, newID()),
			group: in.Group, startedBy: in.StartedBy, desired: "RUNNING", last: "PROVISIONING",
			createdAt: time.Now(), overrides: overrides, tags: in.Tags, launchType: "FARGATE",
			done: make(chan struct{}),
		}
		if len(in.CapacityProviderStrategy) > 0 {
			tk.capacityProvider = in.CapacityProviderStrategy[0].CapacityProvider
		} else if in.LaunchType != "" {
			tk.launchType = in.LaunchType
		}
		if tk.group == "" {
			tk.group = "family:" + s.cfg.TaskDefinition
		}
		s.tasks[tk.arn] = tk
		s.order = append(s.order, tk.arn)
		arns = append(arns, tk.arn)
		s.wg.Go(func() { s.run(tk, command, env) })
	}
	if in.ClientToken != "" {
		s.tokens[in.ClientToken] = arns
	}
	return s.runOutput(arns, nil), nil
}

func (s *Server) runOutput(arns []string, failures []failure) map[string]any {
	tasks := []taskJSON{}
	for _, arn := range arns {
		tasks = append(tasks, s.describe(s.tasks[arn]))
	}
	if failures == nil {
		failures = []failure{}
	}
	return map[string]any{"tasks": tasks, "failures": failures}
}

// run starts the task's process after StartDelay and records its end.
func (s *Server) run(tk *task, command, env []string) {
	s.mu.Lock()
	tk.last = "PENDING"
	s.mu.Unlock()
	if s.cfg.StartDelay > 0 {
		time.Sleep(s.cfg.StartDelay)
	}
	argv := s.cfg.Command
	if len(command) > 0 { // a command override replaces the definition's arguments
		argv = append([]string{s.cfg.Command[0]}, command...)
	}
	s.mu.Lock()
	if tk.desired == "STOPPED" || len(argv) == 0 { // stopped while pending
		tk.last, tk.stoppedAt = "STOPPED", time.Now()
		if len(argv) == 0 {
			tk.stopCode, tk.stoppedReason = "TaskFailedToStart", "CannotStartContainerError: the fake has no command"
		}
		s.mu.Unlock()
		close(tk.done)
		return
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(slices.Clone(s.cfg.Env), env...)
	cmd.Dir = s.cfg.Dir
	out := s.cfg.Output
	if out == nil {
		out = io.Discard
	}
	cmd.Stdout, cmd.Stderr = out, out
	detach(cmd)
	if err := cmd.Start(); err != nil {
		tk.last, tk.desired, tk.stoppedAt = "STOPPED", "STOPPED", time.Now()
		tk.stopCode, tk.stoppedReason = "TaskFailedToStart", "CannotStartContainerError: "+err.Error()
		s.mu.Unlock()
		close(tk.done)
		return
	}
	tk.cmd, tk.last, tk.startedAt = cmd, "RUNNING", time.Now()
	s.mu.Unlock()

	err := cmd.Wait()
	code := 0
	if err != nil {
		code = -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = 128 + int(ws.Signal())
			} else {
				code = ee.ExitCode()
			}
		}
	}
	s.mu.Lock()
	tk.last, tk.desired, tk.stoppedAt, tk.exitCode = "STOPPED", "STOPPED", time.Now(), &code
	if !tk.stopAsked {
		tk.stopCode, tk.stoppedReason = "EssentialContainerExited", "Essential container in task exited"
	}
	s.mu.Unlock()
	close(tk.done)
}

type failure struct {
	Arn    string `json:"arn,omitempty"`
	Reason string `json:"reason"`
	Detail string `json:"detail,omitempty"`
}

type containerJSON struct {
	ContainerArn string `json:"containerArn"`
	TaskArn      string `json:"taskArn"`
	Name         string `json:"name"`
	LastStatus   string `json:"lastStatus"`
	ExitCode     *int   `json:"exitCode,omitempty"`
	Reason       string `json:"reason,omitempty"`
	HealthStatus string `json:"healthStatus"`
	RuntimeID    string `json:"runtimeId,omitempty"`
}

type taskJSON struct {
	TaskArn              string          `json:"taskArn"`
	ClusterArn           string          `json:"clusterArn"`
	TaskDefinitionArn    string          `json:"taskDefinitionArn"`
	LastStatus           string          `json:"lastStatus"`
	DesiredStatus        string          `json:"desiredStatus"`
	LaunchType           string          `json:"launchType,omitempty"`
	CapacityProviderName string          `json:"capacityProviderName,omitempty"`
	Group                string          `json:"group,omitempty"`
	StartedBy            string          `json:"startedBy,omitempty"`
	Containers           []containerJSON `json:"containers"`
	Overrides            json.RawMessage `json:"overrides"`
	CreatedAt            float64         `json:"createdAt"`
	StartedAt            *float64        `json:"startedAt,omitempty"`
	StoppingAt           *float64        `json:"stoppingAt,omitempty"`
	StoppedAt            *float64        `json:"stoppedAt,omitempty"`
	StopCode             string          `json:"stopCode,omitempty"`
	StoppedReason        string          `json:"stoppedReason,omitempty"`
	Tags                 []tag           `json:"tags,omitempty"`
	Cpu                  string          `json:"cpu"`
	Memory               string          `json:"memory"`
	PlatformVersion      string          `json:"platformVersion"`
	Version              int             `json:"version"`
}

func epoch(t time.Time) *float64 {
	if t.IsZero() {
		return nil
	}
	f := float64(t.UnixMilli()) / 1000
	return &f
}

// describe renders a task as the API does; s.mu is held.
func (s *Server) describe(tk *task) taskJSON {
	last := tk.last
	if last == "RUNNING" && tk.desired == "STOPPED" {
		last = "DEACTIVATING"
	}
	c := containerJSON{
		ContainerArn: fmt.Sprintf("arn:aws:ecs:%s:%s:container/%s/%s", Region, Account, s.cfg.Cluster, newID()),
		TaskArn:      tk.arn, Name: s.cfg.ContainerName, LastStatus: tk.last, HealthStatus: "UNKNOWN",
		ExitCode: tk.exitCode,
	}
	if tk.last == "PROVISIONING" {
		c.LastStatus = "PENDING"
	}
	if tk.cmd != nil {
		c.RuntimeID = fmt.Sprintf("%s-%d", tk.arn[strings.LastIndex(tk.arn, "/")+1:], tk.cmd.Process.Pid)
	}
	out := taskJSON{
		TaskArn: tk.arn, ClusterArn: s.clusterARN(), TaskDefinitionArn: s.taskDefARN(),
		LastStatus: last, DesiredStatus: tk.desired, LaunchType: tk.launchType,
		CapacityProviderName: tk.capacityProvider, Group: tk.group, StartedBy: tk.startedBy,
		Containers: []containerJSON{c}, Overrides: tk.overrides, CreatedAt: *epoch(tk.createdAt),
		StartedAt: epoch(tk.startedAt), StoppedAt: epoch(tk.stoppedAt),
		Tags: tk.tags, Cpu: "1024", Memory: "2048", PlatformVersion: "1.4.0", Version: 1,
	}
	if tk.desired == "STOPPED" {
		out.StopCode, out.StoppedReason = tk.stopCode, tk.stoppedReason
		out.StoppingAt = epoch(tk.stoppedAt)
	}
	if out.LaunchType == "" || tk.capacityProvider != "" {
		out.LaunchType = "FARGATE"
	}
	return out
}

func (s *Server) describeTasks(body []byte) (any, error) {
	var in struct {
		Cluster string   `json:"cluster"`
		Tasks   []string `json:"tasks"`
		Include []string `json:"include"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, &apiError{http.StatusBadRequest, "SerializationException", err.Error()}
	}
	if err := s.cluster(in.Cluster); err != nil {
		return nil, err
	}
	if len(in.Tasks) == 0 {
		return nil, invalid("Tasks cannot be empty.")
	}
	if len(in.Tasks) > 100 {
		return nil, invalid("Tasks cannot have more than 100 elements.")
	}
	tags := slices.Contains(in.Include, "TAGS")
	s.mu.Lock()
	defer s.mu.Unlock()
	tasks, failures := []taskJSON{}, []failure{}
	for _, ref := range in.Tasks {
		tk := s.lookup(ref)
		if tk == nil {
			failures = append(failures, failure{Arn: ref, Reason: "MISSING"})
			continue
		}
		d := s.describe(tk)
		if !tags {
			d.Tags = nil
		}
		tasks = append(tasks, d)
	}
	return map[string]any{"tasks": tasks, "failures": failures}, nil
}

// lookup finds a task by ARN or id; s.mu is held.
func (s *Server) lookup(ref string) *task {
	if tk := s.tasks[ref]; tk != nil {
		return tk
	}
	for arn, tk := range s.tasks {
		if strings.HasSuffix(arn, "/"+ref) {
			return tk
		}
	}
	return nil
}

func (s *Server) stopTask(body []byte) (any, error) {
	var in struct {
		Cluster string `json:"cluster"`
		Task    string `json:"task"`
		Reason  string `json:"reason"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, &apiError{http.StatusBadRequest, "SerializationException", err.Error()}
	}
	if err := s.cluster(in.Cluster); err != nil {
		return nil, err
	}
	if len(in.Reason) > 255 {
		return nil, invalid("Reason must be at most 255 characters")
	}
	s.mu.Lock()
	tk := s.lookup(in.Task)
	if tk == nil {
		s.mu.Unlock()
		return nil, invalid("The referenced task was not found.")
	}
	var cmd *exec.Cmd
	if tk.desired != "STOPPED" {
		tk.desired, tk.stopAsked, tk.stopCode = "STOPPED", true, "UserInitiated"
		tk.stoppedReason = in.Reason
		if tk.stoppedReason == "" {
			tk.stoppedReason = "Task stopped by user"
		}
		if tk.last == "RUNNING" {
			cmd = tk.cmd
		}
	}
	out := map[string]any{"task": s.describe(tk)}
	s.mu.Unlock()
	if cmd != nil {
		// ECS sends SIGTERM, then SIGKILL after the container's stop
		// timeout (30 s by default).
		_ = cmd.Process.Signal(syscall.SIGTERM)
		go func() {
			select {
			case <-tk.done:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
			}
		}()
	}
	return out, nil
}

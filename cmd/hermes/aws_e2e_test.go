package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/awsx"
	"github.com/webordinary/hermes/internal/dynamo"
	"github.com/webordinary/hermes/internal/ecs/ecstest"
	"github.com/webordinary/hermes/internal/hermestest"
	"github.com/webordinary/hermes/internal/sqs"
)

// emulators are the AWS emulators CI starts (.ci/services.sh).
type emulators struct{ dynamodb, sqs, ses, s3 string }

// awsEmulators returns the emulators' endpoints, skipping loudly when one
// is missing unless HERMES_TEST_REQUIRE_EMULATORS=1 makes that a failure.
func awsEmulators(t *testing.T) emulators {
	t.Helper()
	e := emulators{
		dynamodb: hermestest.Emulator(t, "HERMES_TEST_DYNAMODB_ENDPOINT", "DynamoDB Local"),
		sqs:      hermestest.Emulator(t, "HERMES_TEST_SQS_ENDPOINT", "SQS emulator (local-aws-sqs)"),
		ses:      strings.TrimRight(hermestest.Emulator(t, "HERMES_TEST_SES_ENDPOINT", "SES emulator (aws-ses-v2-local)"), "/"),
		s3:       hermestest.Emulator(t, "HERMES_TEST_S3_ENDPOINT", "S3 emulator (s3rver)"),
	}
	if testing.Short() {
		t.Skip("builds the binary and starts processes")
	}
	return e
}

// sesProxy stands between Hermes and aws-ses-v2-local: it keeps every
// raw message SES is asked to send (the emulator keeps only parts of
// them) and, while down, answers as an SES outage would (503), so that
// tests can take SES away and bring it back.
type sesProxy struct {
	URL  string
	down atomic.Bool

	mu   sync.Mutex
	sent [][]byte // raw MIME of each accepted SendEmail, in order
	// failed counts the calls refused while down.
	failed int
}

func newSESProxy(t *testing.T, target string) *sesProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &sesProxy{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if p.down.Load() {
			p.mu.Lock()
			p.failed++
			p.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Amzn-ErrorType", "ServiceUnavailable")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"message":"Service Unavailable"}`)
			return
		}
		var req struct {
			Content struct{ Raw struct{ Data string } }
		}
		if json.Unmarshal(b, &req) == nil && req.Content.Raw.Data != "" {
			if raw, err := base64.StdEncoding.DecodeString(req.Content.Raw.Data); err == nil {
				p.mu.Lock()
				p.sent = append(p.sent, raw)
				p.mu.Unlock()
			}
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// messages returns the raw messages SES accepted.
func (p *sesProxy) messages() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, len(p.sent))
	for i, b := range p.sent {
		out[i] = string(b)
	}
	return out
}

// refused returns how many calls the proxy refused while down.
func (p *sesProxy) refused() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failed
}

// awsDeployment is Hermes as it runs on AWS, on the emulators: the
// DynamoDB store, SQS queues, the SES mailer, the SES intake queue and the
// ECS runner (the fake ECS runs each task as a `hermes worker` process of
// the built binary).
type awsDeployment struct {
	t      *testing.T
	vars   map[string]string // serve's environment
	prefix string            // of every queue of the deployment
	intake string            // the SES intake queue's name
	queues *sqs.Queues       // on the emulator, for the test's own sends
	s3     *s3.Client        // on the emulator: the previews' bucket
	bucket string
	ecs    *ecstest.Server
	ses    *sesProxy
	tasks  *logLines // the tasks' output
	site   string    // the example site's repository
	// taskData is the data directory of every task (the fake runs them
	// all on this machine): the container's clone is under workspaces/.
	taskData string
}

// newAWSDeployment sets up a deployment on the emulators with a table and
// queue names of its own (deleted at the end), runs `hermes setup` for it,
// and returns it; serve processes are started with start. Each user of
// users gets a project membership on amelia's site; the project runs
// agentJSON with busyPolicy.
func newAWSDeployment(t *testing.T, users []string, agentJSON, busyPolicy string) *awsDeployment {
	t.Helper()
	e := awsEmulators(t)
	var b [4]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	d := &awsDeployment{t: t, prefix: "t" + id + "-", tasks: newLogLines(), taskData: filepath.Join(t.TempDir(), "task"),
		bucket: "previews-" + id}
	d.intake = d.prefix + "intake"
	table := "hermes-e2e-" + id

	ddb := dynamo.NewClient(awsx.Emulator(e.dynamodb))
	d.queues = sqs.New(awsx.Emulator(e.sqs), sqs.Options{})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ddb.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(table)})
		names, _ := d.queues.ListQueues(ctx, d.prefix)
		for _, n := range names {
			_ = d.queues.DeleteQueue(ctx, n)
		}
	})
	d.ses = newSESProxy(t, e.ses)
	d.s3 = s3.NewFromConfig(awsx.Emulator(e.s3), func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := d.s3.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(d.bucket)}); err != nil {
		t.Fatalf("the previews' bucket: %v", err)
	}
	// Secrets Manager has no emulator here: a fake speaking its protocol,
	// with the one secret the tests use.
	sm := fakeSecretsManager(t, map[string]string{"prod/claude": "sk-ant-e2e-secret"})

	dir := exampleProject(t)
	d.site = filepath.Join(dir, "site.git")
	var members []string
	for _, u := range users {
		members = append(members, fmt.Sprintf(`{"id":%q,"emails":["%s@example.com"]}`, u, u))
	}
	projects := filepath.Join(dir, "projects.json")
	if err := os.WriteFile(projects, fmt.Appendf(nil, `{"clients":[{"id":"amelia","name":"Amelia Stamps","projects":[{"id":"site",
		"repoUrl":%q,"emailAddresses":["edit@amelia.example.com"],"agent":%s,"busyPolicy":%q,
		"previewUrlTemplate":"https://edit.amelia.example.com/{thread}/"}],
		"users":[%s]}]}`, d.site, agentJSON, busyPolicy, strings.Join(members, ",")), 0o600); err != nil {
		t.Fatal(err)
	}

	// What the task role and the VPC endpoints give a process on AWS: the
	// credentials and where each service answers.
	awsVars := map[string]string{
		"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
		"AWS_CONFIG_FILE": filepath.Join(dir, "no-aws-config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "no-aws-credentials"),
		"AWS_ENDPOINT_URL_DYNAMODB": e.dynamodb, "AWS_ENDPOINT_URL_SQS": e.sqs, "AWS_ENDPOINT_URL_SESV2": d.ses.URL,
		"AWS_ENDPOINT_URL_SECRETS_MANAGER": sm.URL, "AWS_ENDPOINT_URL_S3": e.s3,
	}
	taskEnv := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range awsVars {
		taskEnv = append(taskEnv, k+"="+v)
	}
	d.ecs = ecstest.New(t, ecstest.Config{
		Cluster: "webordinary-edit-cluster", TaskDefinition: "webordinary-edit-worker", ContainerName: "worker",
		Command: []string{hermesBinary(t), "worker"},
		// A task's own storage (its clone): one directory here, apart
		// from every serve's.
		Env:    append(taskEnv, "HERMES_DATA_DIR="+d.taskData),
		Output: d.tasks,
	})
	d.vars = map[string]string{
		"PORT": "0", "HERMES_HOST": "127.0.0.1", "HERMES_LOG_LEVEL": "info",
		"HERMES_STORE": "dynamodb", "HERMES_QUEUE": "sqs", "HERMES_MAILER": "ses", "HERMES_RUNNER": "ecs",
		"DYNAMODB_TABLE_NAME": table, "HERMES_QUEUE_PREFIX": d.prefix, "EMAIL_QUEUE_URL": d.intake,
		"HERMES_SMTP_ADDR": "off", "HERMES_PROJECTS_FILE": projects, "HERMES_API_KEYS": "an-admin-key-for-tests=admin",
		"HERMES_PUBLIC_URL":    "https://hermes.example.com",
		"AWS_ENDPOINT_URL_ECS": d.ecs.URL, "ECS_TASK_DEFINITION": "webordinary-edit-worker",
		"ECS_SUBNETS": "subnet-0123456789abcdef0", "ECS_SECURITY_GROUPS": "sg-0123456789abcdef0",
		"ECS_CAPACITY_PROVIDER":     "FARGATE_SPOT",
		"HERMES_RECONCILE_INTERVAL": "1s", "HERMES_RESULTS_INTERVAL": "500ms", "HERMES_JOB_VISIBILITY": "30s",
		"HERMES_IDLE_TIMEOUT": "10m",
		// Workers publish previews to S3 (path-style for the emulator).
		"HERMES_PREVIEW_BUCKET": d.bucket, "HERMES_S3_PATH_STYLE": "on",
	}
	for k, v := range awsVars {
		d.vars[k] = v
	}
	// The first run of an environment: the table and the intake queue.
	setup := exec.Command(hermesBinary(t), "setup")
	setup.Env = d.environ(t.TempDir())
	if out, err := setup.CombinedOutput(); err != nil {
		t.Fatalf("hermes setup: %v\n%s", err, out)
	} else if !strings.Contains(string(out), "created table "+table) || !strings.Contains(string(out), "created the intake queue "+d.intake) {
		t.Fatalf("hermes setup said:\n%s", out)
	}
	return d
}

// environ is serve's environment with a data directory of its own.
func (d *awsDeployment) environ(dataDir string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "HERMES_DATA_DIR=" + dataDir}
	for k, v := range d.vars {
		env = append(env, k+"="+v)
	}
	return env
}

// start runs one `hermes serve` replica of the deployment (the built
// binary, a data directory of its own: nothing is shared but AWS) and
// returns its client and logs.
func (d *awsDeployment) start() (*exec.Cmd, client, *logLines) {
	t := d.t
	t.Helper()
	vars := map[string]string{}
	for _, kv := range d.environ(t.TempDir()) {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	cmd, c, logs := startBinary(t, vars)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("serve (pid %d):\n%s", cmd.Process.Pid, logs)
		}
	})
	return cmd, c, logs
}

// email puts an SES receipt notification of a mail from user to Amelia's
// address on the intake queue, SNS-wrapped as an SES → SNS → SQS
// subscription delivers it (raw message delivery off, the content
// base64-encoded), with passing verdicts. It returns the notification's
// body, which a test may send again (a redelivery).
func (d *awsDeployment) email(user, msgID, subject, body string, replyTo *outboxItem) string {
	t := d.t
	t.Helper()
	h := []string{
		"From: " + user + " <" + user + "@example.com>", "To: edit@amelia.example.com",
		"Subject: " + subject, "Message-ID: " + msgID, "Date: " + time.Now().UTC().Format(time.RFC1123Z),
		"MIME-Version: 1.0", `Content-Type: text/plain; charset="UTF-8"`,
	}
	if replyTo != nil {
		h[2] = "Subject: Re: " + replyTo.Subject
		h = append(h, "In-Reply-To: "+replyTo.Headers["Message-ID"],
			"References: "+strings.TrimSpace(replyTo.Headers["References"]+" "+replyTo.Headers["Message-ID"]))
	}
	raw := strings.Join(h, "\r\n") + "\r\n\r\n" + strings.ReplaceAll(body, "\n", "\r\n")
	pass := map[string]string{"status": "PASS"}
	now := time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	sesID := hermes.NewToken()
	notification, err := json.Marshal(map[string]any{
		"notificationType": "Received",
		"mail": map[string]any{
			"timestamp": now, "source": user + "@example.com", "messageId": sesID,
			"destination": []string{"edit@amelia.example.com"},
			"commonHeaders": map[string]any{
				"from": []string{user + "@example.com"}, "to": []string{"edit@amelia.example.com"},
				"messageId": msgID, "subject": subject,
			},
		},
		"receipt": map[string]any{
			"timestamp": now, "recipients": []string{"edit@amelia.example.com"},
			"spamVerdict": pass, "virusVerdict": pass, "spfVerdict": pass, "dkimVerdict": pass, "dmarcVerdict": pass,
			"action": map[string]any{"type": "SNS", "topicArn": "arn:aws:sns:us-east-1:123456789012:webordinary-email-intake", "encoding": "BASE64"},
		},
		"content": base64.StdEncoding.EncodeToString([]byte(raw)),
	})
	if err != nil {
		t.Fatal(err)
	}
	envelope, err := json.Marshal(map[string]any{
		"Type": "Notification", "MessageId": hermes.NewToken(), "TopicArn": "arn:aws:sns:us-east-1:123456789012:webordinary-email-intake",
		"Subject": "Amazon SES Email Receipt Notification", "Message": string(notification), "Timestamp": now,
		"SignatureVersion": "1", "Signature": "EXAMPLE", "SigningCertURL": "https://sns.us-east-1.amazonaws.com/cert.pem",
	})
	if err != nil {
		t.Fatal(err)
	}
	d.send(string(envelope))
	return string(envelope)
}

// send puts a body on the intake queue.
func (d *awsDeployment) send(body string) {
	d.t.Helper()
	if _, err := d.queues.Send(d.t.Context(), d.intake, body, nil); err != nil {
		d.t.Fatal(err)
	}
}

// allSent reports whether every outbox item has been sent.
func (c client) allSent() bool {
	for _, it := range c.outbox() {
		if it.Status != "sent" {
			return false
		}
	}
	return true
}

// sesSent counts the messages SES accepted whose raw MIME has
// In-Reply-To inReplyTo and contains marker.
func (d *awsDeployment) sesSent(inReplyTo, marker string) int {
	n := 0
	for _, m := range d.ses.messages() {
		if strings.Contains(m, "In-Reply-To: "+inReplyTo) && strings.Contains(m, marker) {
			n++
		}
	}
	return n
}

// TestAWSEndToEnd is the whole flow on the production backends
// (HERMES_STORE=dynamodb HERMES_QUEUE=sqs HERMES_MAILER=ses
// HERMES_RUNNER=ecs) against DynamoDB Local, local-aws-sqs,
// aws-ses-v2-local and the fake ECS: an SES receipt notification on the
// intake queue is routed, acknowledged through SES, wakes the user's
// container with one RunTask (the task is a real `hermes worker` on SQS
// and DynamoDB), the agent's commit is reported, and the threaded result
// reply goes out through SES; a follow-up in the thread builds on the
// first commit; a redelivered notification changes nothing.
func TestAWSEndToEnd(t *testing.T) {
	agent := testAgent(t)
	d := newAWSDeployment(t, []string{"scott"}, fmt.Sprintf(`{"kind":"command","command":[%q,"multi"]}`, agent), "interrupt")
	// A secret of the workers, given as a reference: it must reach the
	// task as the reference (RunTask overrides can be read back), and the
	// worker resolves it.
	d.vars["ANTHROPIC_API_KEY"] = "secretsmanager:prod/claude"
	_, c, _ := d.start()
	defer func() {
		if t.Failed() {
			t.Logf("tasks:\n%s", d.tasks)
		}
	}()

	first := d.email("scott", "<aws1@example.com>", "New title", "Please set the title Harbour\n", nil)
	var result outboxItem
	waitLong(t, "the result reply", func() (ok bool) { result, ok = c.find("result", "<aws1@example.com>"); return })
	if !strings.Contains(result.Text, `Set the page title to "Harbour"`) || !strings.Contains(result.Text, "index.html") {
		t.Errorf("result reply %q", result.Text)
	}
	waitLong(t, "the acknowledgement and the result sent through SES", func() bool {
		return d.sesSent("<aws1@example.com>", result.ThreadID) == 2
	})
	waitLong(t, "every reply marked sent", func() bool { return c.allSent() })
	// The preview: synced to the bucket by the worker, linked by the
	// project's template.
	if want := "https://edit.amelia.example.com/" + result.ThreadID + "/"; !strings.Contains(result.Text, want) {
		t.Errorf("result reply without the preview link %s: %q", want, result.Text)
	}
	if page := hermestest.BucketObjects(t, d.s3, d.bucket, "amelia/site/"+result.ThreadID+"/")["index.html"]; !strings.Contains(page, "<title>Harbour</title>") {
		t.Errorf("the published preview: %q", page)
	}
	runs := d.ecs.RunRequests()
	if len(runs) != 1 {
		t.Fatalf("%d RunTask calls, want 1", len(runs))
	}
	if strings.Contains(string(runs[0]), "sk-ant-e2e-secret") || !strings.Contains(string(runs[0]), `"secretsmanager:prod/claude"`) {
		t.Errorf("RunTask got the secret's value, or not its reference: %s", runs[0])
	}
	if st, _ := c.containerState(); st != "running" {
		t.Errorf("container %s, want running", st)
	}
	// GET /health checks DynamoDB, SQS and the ECS cluster for real.
	if resp, err := http.Get(c.base + "/health"); err != nil {
		t.Error(err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || strings.Count(string(b), `"status":"ok"`) != 4 {
			t.Errorf("/health: %d %s", resp.StatusCode, b)
		}
	}
	if d.ecs.Calls("DescribeClusters") == 0 {
		t.Error("the health check did not ask ECS")
	}

	// The same notification again (SQS delivers at least once): nothing new.
	d.send(first)
	// A follow-up in the thread builds on the first commit, in the same task.
	d.email("scott", "<aws2@example.com>", "", "and now the title Lighthouse\n", &result)
	var second outboxItem
	waitLong(t, "the follow-up's result", func() (ok bool) { second, ok = c.find("result", "<aws2@example.com>"); return })
	if second.ThreadID != result.ThreadID || !strings.Contains(second.Text, `"Lighthouse"`) {
		t.Errorf("follow-up result %+v, want it in thread %s", second, result.ThreadID)
	}
	waitLong(t, "the follow-up sent through SES", func() bool { return d.sesSent("<aws2@example.com>", result.ThreadID) == 2 })
	if page := hermestest.BucketObjects(t, d.s3, d.bucket, "amelia/site/"+result.ThreadID+"/")["index.html"]; !strings.Contains(page, "<title>Lighthouse</title>") {
		t.Errorf("the preview after the follow-up: %q", page)
	}
	time.Sleep(time.Second) // time for a duplicate to show, if there were one
	if n := c.count("ack", "<aws1@example.com>"); n != 1 {
		t.Errorf("%d acknowledgements of the first mail, want 1 (the redelivery is a duplicate)", n)
	}
	if n := d.sesSent("<aws1@example.com>", result.ThreadID); n != 2 {
		t.Errorf("%d emails sent in reply to the first mail, want 2", n)
	}
	if runs := d.ecs.RunRequests(); len(runs) != 1 {
		t.Errorf("%d RunTask calls, want 1: the follow-up went to the running task", len(runs))
	}
	commit := func(text string) string {
		for _, line := range strings.Split(text, "\n") {
			if _, after, ok := strings.Cut(line, "Commit: "); ok {
				return strings.Fields(after)[0]
			}
		}
		t.Fatalf("no commit in %q", text)
		return ""
	}
	ws := filepath.Join(d.taskData, "workspaces", "amelia_site_scott")
	branch := "thread-" + result.ThreadID
	if parent := strings.TrimSpace(gitOut(t, ws, "log", "-1", "--format=%H", branch+"~1")); !strings.HasPrefix(parent, commit(result.Text)) {
		t.Errorf("the follow-up's parent is %s, want the first commit %s", parent, commit(result.Text))
	}
	if head := strings.TrimSpace(gitOut(t, ws, "log", "-1", "--format=%H", branch)); !strings.HasPrefix(head, commit(second.Text)) {
		t.Errorf("the branch is at %s, want the follow-up's commit %s", head, commit(second.Text))
	}
}

// TestTwoReplicasEndToEnd runs two `hermes serve` replicas on the same
// DynamoDB table, SQS queues and fake ECS, and sends a burst of mail
// through the intake queue both consume — three users, three new threads
// each, every notification delivered twice — and checks that every
// message was routed once (one acknowledgement, one job, one result
// each), that each user's container was started with one task although
// both replicas woke it, that every reply went out through SES once, and
// that the background loops ran on one replica only (the lease).
func TestTwoReplicasEndToEnd(t *testing.T) {
	agent := testAgent(t)
	users := []string{"scott", "mia", "lee"}
	d := newAWSDeployment(t, users, fmt.Sprintf(`{"kind":"command","command":[%q,"multi"]}`, agent), "queue")
	_, a, logsA := d.start()
	_, b, logsB := d.start()
	defer func() {
		if t.Failed() {
			t.Logf("tasks:\n%s", d.tasks)
		}
	}()

	type sent struct{ user, msgID, title string }
	var mails []sent
	for i := range 3 {
		for _, u := range users {
			mails = append(mails, sent{u, fmt.Sprintf("<burst-%s-%d@example.com>", u, i), fmt.Sprintf("T%s%d", u, i)})
		}
	}
	var bodies []string
	for _, m := range mails {
		bodies = append(bodies, d.email(m.user, m.msgID, "Title "+m.title, "set the title "+m.title+"\n", nil))
	}
	for _, body := range bodies { // SQS delivers at least once
		d.send(body)
	}

	waitLong(t, "a result for every mail", func() bool {
		n := 0
		for _, it := range a.outbox() {
			if it.Kind == "result" {
				n++
			}
		}
		return n >= len(mails)
	})
	waitLong(t, "every reply sent", func() bool { return b.allSent() })
	time.Sleep(2 * time.Second) // time for a duplicate to show, if there were one
	items := b.outbox()
	threads := map[string]string{}
	for _, m := range mails {
		var acks, results []outboxItem
		for _, it := range items {
			if it.Headers["In-Reply-To"] != m.msgID {
				continue
			}
			switch it.Kind {
			case "ack":
				acks = append(acks, it)
			case "result":
				results = append(results, it)
			default:
				t.Errorf("%s: unexpected %s reply %q", m.msgID, it.Kind, it.Text)
			}
		}
		if len(acks) != 1 || len(results) != 1 {
			t.Errorf("%s: %d acknowledgements and %d results, want one each", m.msgID, len(acks), len(results))
			continue
		}
		if !strings.Contains(results[0].Text, fmt.Sprintf("%q", m.title)) {
			t.Errorf("%s: result %q, want the title %s", m.msgID, results[0].Text, m.title)
		}
		if results[0].To != m.user+"@example.com" {
			t.Errorf("%s: result to %s", m.msgID, results[0].To)
		}
		if other, dup := threads[results[0].ThreadID]; dup {
			t.Errorf("%s and %s share thread %s", m.msgID, other, results[0].ThreadID)
		}
		threads[results[0].ThreadID] = m.msgID
		if n := d.sesSent(m.msgID, results[0].ThreadID); n != 2 {
			t.Errorf("%s: %d emails through SES, want 2 (the acknowledgement and the result)", m.msgID, n)
		}
	}
	if n := len(d.ses.messages()); n != 2*len(mails) {
		t.Errorf("SES sent %d emails, want %d", n, 2*len(mails))
	}

	// One task per container, whichever replica woke it.
	started := map[string]int{}
	for _, raw := range d.ecs.RunRequests() {
		var req struct {
			Overrides struct {
				ContainerOverrides []struct {
					Environment []struct{ Name, Value string }
				}
			}
		}
		if err := json.Unmarshal(raw, &req); err != nil {
			t.Fatal(err)
		}
		for _, kv := range req.Overrides.ContainerOverrides[0].Environment {
			if kv.Name == "HERMES_CONTAINER_ID" {
				started[kv.Value]++
			}
		}
	}
	for _, u := range users {
		if id := "amelia_site_" + u; started[id] != 1 {
			t.Errorf("container %s started %d times, want once (all starts: %v)", id, started[id], started)
		}
	}
	if len(started) != len(users) {
		t.Errorf("tasks started for %v", started)
	}
	// Each job was done once: one commit on each thread's branch.
	for thread, msgID := range threads {
		user := ""
		for _, m := range mails {
			if m.msgID == msgID {
				user = m.user
			}
		}
		ws := filepath.Join(d.taskData, "workspaces", "amelia_site_"+user)
		if n := strings.TrimSpace(gitOut(t, ws, "rev-list", "--count", "main..thread-"+thread)); n != "1" {
			t.Errorf("%s: %s commits on its thread's branch, want 1", msgID, n)
		}
	}

	// The reaper, reconcile, queue clean-up and dead-job loops run on the
	// holder of the background lease: one replica.
	leading := 0
	for _, logs := range []*logLines{logsA, logsB} {
		for _, m := range logs.all() {
			if m["msg"] == "this replica runs the background loops" {
				leading++
				break
			}
		}
	}
	if leading != 1 {
		t.Errorf("%d replicas ran the background loops, want 1", leading)
	}
	for i, logs := range []*logLines{logsA, logsB} {
		n := 0
		for _, m := range logs.all() {
			if m["msg"] == "message routed" {
				n++
			}
		}
		t.Logf("replica %d routed %d messages", i+1, n)
	}
}

// metric returns the value of one sample of /metrics (the exact series,
// e.g. `hermes_circuit_state{service="ses"}`), or "" when absent.
func (c client) metric(series string) string {
	c.t.Helper()
	resp, err := http.Get(c.base + "/metrics")
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// TestAWSOutageEndToEnd takes SES and ECS away while mail arrives: intake
// keeps accepting and queueing (the jobs wait on the container's input
// queue, the acknowledgements in the outbox), the breakers of both open
// (hermes_circuit_state), and once both are back everything catches up —
// the container starts with one task, both requests are done, and every
// reply goes out through SES once.
func TestAWSOutageEndToEnd(t *testing.T) {
	agent := testAgent(t)
	d := newAWSDeployment(t, []string{"scott"}, fmt.Sprintf(`{"kind":"command","command":[%q,"multi"]}`, agent), "queue")
	d.vars["HERMES_BREAKER_FAILURES"] = "2"
	d.vars["HERMES_BREAKER_COOLDOWN"] = "2s"
	d.ses.down.Store(true)
	d.ecs.Down()
	_, c, _ := d.start()
	defer func() {
		if t.Failed() {
			t.Logf("tasks:\n%s", d.tasks)
		}
	}()

	d.email("scott", "<outage1@example.com>", "First", "set the title Storm\n", nil)
	d.email("scott", "<outage2@example.com>", "Second", "set the title Calm\n", nil)
	waitLong(t, "both jobs queued and both acknowledgements in the outbox", func() bool {
		acks := 0
		for _, it := range c.outbox() {
			if it.Kind == "ack" && it.Status == "pending" {
				acks++
			}
		}
		return acks == 2 && c.inputDepth() == 2
	})
	waitLong(t, "the ECS and SES breakers open", func() bool {
		return c.metric(`hermes_circuit_state{service="ecs"}`) == "2" && c.metric(`hermes_circuit_state{service="ses"}`) == "2"
	})
	if d.ses.refused() == 0 || d.ecs.Calls("RunTask") == 0 {
		t.Fatalf("SES refused %d calls, ECS got %d RunTask calls: both should have been tried", d.ses.refused(), d.ecs.Calls("RunTask"))
	}
	if len(d.ecs.Tasks()) != 0 || len(d.ses.messages()) != 0 {
		t.Fatalf("%d tasks and %d emails while down", len(d.ecs.Tasks()), len(d.ses.messages()))
	}
	if st, _ := c.containerState(); st == "error" {
		t.Fatalf("the container gave up while ECS was down: %s", st)
	}

	d.ecs.Up()
	d.ses.down.Store(false)
	for _, id := range []string{"<outage1@example.com>", "<outage2@example.com>"} {
		waitLong(t, "the result of "+id, func() bool { _, ok := c.find("result", id); return ok })
	}
	waitLong(t, "every reply sent after the recovery", func() bool { return c.allSent() })
	for _, id := range []string{"<outage1@example.com>", "<outage2@example.com>"} {
		if n := c.count("ack", id) + c.count("result", id); n != 2 {
			t.Errorf("%s: %d replies, want the acknowledgement and the result", id, n)
		}
		res, _ := c.find("result", id)
		if n := d.sesSent(id, res.ThreadID); n != 2 {
			t.Errorf("%s: %d emails through SES, want 2", id, n)
		}
	}
	if n := len(d.ecs.Tasks()); n != 1 {
		t.Errorf("%d tasks after the recovery, want 1", n)
	}
	waitLong(t, "the breakers closed", func() bool {
		return c.metric(`hermes_circuit_state{service="ecs"}`) == "0" && c.metric(`hermes_circuit_state{service="ses"}`) == "0"
	})
}

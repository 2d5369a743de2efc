// Package config reads Hermes's configuration from the environment and
// validates it, so that a bad value stops start-up with a message naming the
// variable and what it allows.
package config

import (
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/golang-jwt/jwt/v5"

	"github.com/webordinary/hermes"
	"github.com/webordinary/hermes/internal/s3site"
	"github.com/webordinary/hermes/internal/ses"
)

// Config is everything Hermes reads from its environment.
type Config struct {
	Env        string // development, production or test (HERMES_ENV, or NODE_ENV)
	Host       string // HERMES_HOST: listen host, empty for all interfaces
	Port       int    // PORT
	BasePath   string // BASE_PATH: "" or "/hermes"
	DataDir    string // HERMES_DATA_DIR
	PublicURL  string // HERMES_PUBLIC_URL, without a trailing slash, base path included
	LogLevel   slog.Level
	LogFormat  string // json or text
	SessionTTL time.Duration
	// ApprovalTTL is how long a plan's approval link works
	// (HERMES_APPROVAL_TTL).
	ApprovalTTL time.Duration
	// IdleTimeout is how long a container with no work lives on.
	IdleTimeout     time.Duration
	ReaperInterval  time.Duration
	ShutdownTimeout time.Duration
	// WorkerBin is the hermes binary the local runner starts as `hermes
	// worker` (HERMES_WORKER_BIN; this executable when empty).
	WorkerBin string
	// ReconcileInterval is how often containers with waiting jobs and no
	// worker are woken (HERMES_RECONCILE_INTERVAL), the safety net behind
	// push wakes.
	ReconcileInterval time.Duration
	// JobVisibility is how long a worker's job stays hidden from other
	// receivers without being extended (HERMES_JOB_VISIBILITY); the worker
	// extends it every half while the job runs.
	JobVisibility time.Duration
	// ResultsInterval is the pause between the results relay's passes
	// over the output queues (HERMES_RESULTS_INTERVAL).
	ResultsInterval time.Duration

	// QueueCleanupAfter: the queue sets of containers stopped for longer
	// than this, with empty queues, are deleted
	// (HERMES_QUEUE_CLEANUP_AFTER, default 168h; 0 disables).
	QueueCleanupAfter time.Duration

	APIKeys []APIKey // HERMES_API_KEYS
	JWT     JWTConfig

	// PprofAddr, when set, serves net/http/pprof on this loopback address
	// (HERMES_PPROF_ADDR) for profiling; never on the API port.
	PprofAddr string

	ProjectsFile string // HERMES_PROJECTS_FILE
	SMTPAddr     string // HERMES_SMTP_ADDR; "" when off

	Store, Queue, Runner, Mailer string // backends

	SMTPURL       *url.URL // SMTP_URL
	FromEmail     string   // HERMES_FROM_EMAIL
	Twilio        Twilio
	Slack         Slack
	EmailQueueURL string // EMAIL_QUEUE_URL
	// QueuePrefix starts the names of the containers' queues
	// (HERMES_QUEUE_PREFIX, default "webordinary-"): {prefix}input-{id},
	// {prefix}output-{id}, {prefix}dlq-{id}. At most 17 characters, so that
	// the names stay within SQS's 80 with the longest container ids.
	QueuePrefix string
	// SESPolicy: which SES verdicts must pass (HERMES_SES_REQUIRE, a comma
	// list of spf, dkim, dmarc; default all three). Spam and virus
	// failures are always refused.
	SESPolicy ses.Policy
	AWSRegion string
	// Model decides which instructions need approval (HERMES_MODEL):
	// keywords (internal/classify) or bedrock (Bedrock Converse, falling
	// back to the keywords when it fails).
	Model   string
	Bedrock Bedrock
	// EMF writes CloudWatch Embedded Metric Format lines to standard
	// output every EMFInterval (HERMES_METRICS_EMF, default on in
	// production; HERMES_METRICS_EMF_INTERVAL, default 60s).
	EMF            bool
	EMFInterval    time.Duration
	DynamoDBTable  string
	ECSClusterName string
	ECSServiceName string
	// ECS describes the edit containers' tasks (HERMES_RUNNER=ecs).
	ECS ECS
	// Breaker tunes the circuit breaker of every AWS service
	// (HERMES_BREAKER_FAILURES: transient failures in a row that open it,
	// default 5; HERMES_BREAKER_COOLDOWN: how long it stays open before a
	// trial call, default 30s).
	Breaker Breaker
	// Preview is where workers publish previews: an S3 bucket
	// (HERMES_PREVIEW_BUCKET), else $HERMES_DATA_DIR/previews, which serve
	// serves.
	Preview Preview
	// Git authenticates the workers' git commands to http(s) repositories.
	Git Git
}

// Preview configures the publication of previews to S3 (worker).
type Preview struct {
	Bucket string // HERMES_PREVIEW_BUCKET; "" publishes into the data directory
	// Prefix is the key prefix template of a thread's preview
	// (HERMES_PREVIEW_PREFIX, s3site.CheckPrefix), default
	// {client}/{project}/{thread}/.
	Prefix string
	// PathStyle addresses the bucket in the path, not the host name
	// (HERMES_S3_PATH_STYLE, default off): for S3 emulators.
	PathStyle bool
}

// Git is the workers' HTTP Basic authentication to http(s) repositories.
type Git struct {
	Token    string // HERMES_GIT_TOKEN; none when empty. A secret: never logged or echoed
	Username string // HERMES_GIT_USERNAME, default x-access-token (GitHub's)
}

// Breaker is the circuit breakers' configuration.
type Breaker struct {
	Failures int
	Cooldown time.Duration
}

// ECS is the ECS runner's configuration; TaskDefinition and Subnets are
// required when HERMES_RUNNER=ecs.
type ECS struct {
	TaskDefinition string   // ECS_TASK_DEFINITION: family, family:revision or ARN
	ContainerName  string   // ECS_CONTAINER_NAME: the worker's container (default worker)
	Subnets        []string // ECS_SUBNETS: comma list
	SecurityGroups []string // ECS_SECURITY_GROUPS: comma list (none: the VPC's default)
	AssignPublicIP bool     // ECS_ASSIGN_PUBLIC_IP (default off: private subnets with NAT or endpoints)
	// CapacityProviders is the capacity provider strategy
	// (ECS_CAPACITY_PROVIDER: a comma list of NAME[:WEIGHT[:BASE]], e.g.
	// FARGATE_SPOT or FARGATE_SPOT:3,FARGATE:1); empty runs the tasks with
	// launch type FARGATE.
	CapacityProviders []CapacityProvider
}

// CapacityProvider is one item of a capacity provider strategy.
type CapacityProvider struct {
	Name         string
	Weight, Base int
}

// APIKey is one configured API key, kept only as its SHA-256.
type APIKey struct {
	Hash  [sha256.Size]byte
	Scope Scope
}

// Scope is what a caller may do: everything (admin) or one client's data.
type Scope struct {
	Admin    bool
	ClientID string
}

func (s Scope) String() string {
	if s.Admin {
		return "admin"
	}
	return "client:" + s.ClientID
}

// ParseScope reads "admin" or "client:ID".
func ParseScope(s string) (Scope, error) {
	if s == "admin" {
		return Scope{Admin: true}, nil
	}
	if id, ok := strings.CutPrefix(s, "client:"); ok && hermes.ValidSlug(id) {
		return Scope{ClientID: id}, nil
	}
	return Scope{}, fmt.Errorf("scope %q is neither admin nor client:ID", s)
}

// JWTConfig configures bearer JWTs. Enabled when a secret or a public key
// is set; then issuer and audience are required.
type JWTConfig struct {
	Secret     []byte         // HERMES_JWT_SECRET (HS256)
	PublicKey  *rsa.PublicKey // HERMES_JWT_PUBLIC_KEY (RS256), PEM text or a file path
	Issuer     string         // HERMES_JWT_ISSUER
	Audience   string         // HERMES_JWT_AUDIENCE
	ScopeClaim string         // HERMES_JWT_SCOPE_CLAIM, default "scope"
}

// Enabled reports whether JWTs are accepted.
func (j JWTConfig) Enabled() bool { return len(j.Secret) > 0 || j.PublicKey != nil }

// Bedrock configures the Bedrock model (HERMES_MODEL=bedrock).
type Bedrock struct {
	ModelID        string        // BEDROCK_MODEL_ID (anthropic.claude-3-haiku-20240307-v1:0)
	SummaryModelID string        // BEDROCK_SUMMARY_MODEL_ID (BEDROCK_MODEL_ID)
	Temperature    float64       // BEDROCK_TEMPERATURE (0)
	TopP           float64       // BEDROCK_TOP_P (0.95)
	MaxTokens      int           // BEDROCK_MAX_TOKENS (2048)
	Timeout        time.Duration // BEDROCK_TIMEOUT (10s)
}

// Twilio is the SMS channel's configuration.
type Twilio struct {
	AccountSID, AuthToken, APIURL string
}

// Slack is the chat channel's configuration.
type Slack struct {
	SigningSecret, BotToken, APIURL string
}

// DefaultQueuePrefix is the default HERMES_QUEUE_PREFIX (the reference's
// queue names).
const DefaultQueuePrefix = "webordinary-"

// MaxQueuePrefixLen is the longest HERMES_QUEUE_PREFIX: with "output-" and
// the longest container id, a queue name is SQS's longest.
const MaxQueuePrefixLen = hermes.MaxQueueNameLen - len("output-") - hermes.MaxContainerIDLen

// MinAPIKeyLen is the shortest API key accepted in HERMES_API_KEYS.
const MinAPIKeyLen = 16

var basePathPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(/[A-Za-z0-9._~-]+)+$`) })

// Load reads the configuration through getenv and validates it. The error
// lists every bad variable, one per line.
func Load(getenv func(string) string) (Config, error) {
	l := loader{getenv: getenv}
	envVar := "HERMES_ENV" // NODE_ENV is the reference's name for it
	if getenv(envVar) == "" && getenv("NODE_ENV") != "" {
		envVar = "NODE_ENV"
	}
	c := Config{
		Env:               l.oneOf(envVar, "development", "development", "production", "test"),
		Host:              l.str("HERMES_HOST", ""),
		Port:              l.port("PORT", 3000),
		BasePath:          l.str("BASE_PATH", ""),
		DataDir:           l.str("HERMES_DATA_DIR", "./data"),
		LogFormat:         l.oneOf("HERMES_LOG_FORMAT", "json", "json", "text"),
		SessionTTL:        l.duration("SESSION_TTL", 30*time.Minute, time.Second),
		ApprovalTTL:       l.duration("HERMES_APPROVAL_TTL", hermes.DefaultApprovalTTL, time.Minute),
		IdleTimeout:       l.duration("HERMES_IDLE_TIMEOUT", 20*time.Minute, time.Second),
		ReaperInterval:    l.duration("HERMES_REAPER_INTERVAL", 15*time.Second, 100*time.Millisecond),
		ShutdownTimeout:   l.duration("HERMES_SHUTDOWN_TIMEOUT", 20*time.Second, 0),
		WorkerBin:         l.str("HERMES_WORKER_BIN", ""),
		ReconcileInterval: l.duration("HERMES_RECONCILE_INTERVAL", 15*time.Second, 100*time.Millisecond),
		JobVisibility:     l.duration("HERMES_JOB_VISIBILITY", 5*time.Minute, time.Second),
		ResultsInterval:   l.duration("HERMES_RESULTS_INTERVAL", 2*time.Second, 10*time.Millisecond),
		ProjectsFile:      l.str("HERMES_PROJECTS_FILE", ""),
		SMTPAddr:          l.str("HERMES_SMTP_ADDR", "127.0.0.1:2525"),
		Store:             l.oneOf("HERMES_STORE", "sqlite", "sqlite", "dynamodb"),
		Queue:             l.oneOf("HERMES_QUEUE", "sqlite", "sqlite", "sqs"),
		Runner:            l.oneOf("HERMES_RUNNER", "local", "local", "ecs"),
		Mailer:            l.oneOf("HERMES_MAILER", "outbox", "outbox", "smtp", "ses"),
		FromEmail:         l.str("HERMES_FROM_EMAIL", "hermes@localhost"),
		Twilio: Twilio{
			AccountSID: l.str("TWILIO_ACCOUNT_SID", ""),
			AuthToken:  l.str("TWILIO_AUTH_TOKEN", ""),
			APIURL:     l.httpURL("TWILIO_API_URL", "https://api.twilio.com"),
		},
		Slack: Slack{
			SigningSecret: l.str("SLACK_SIGNING_SECRET", ""),
			BotToken:      l.str("SLACK_BOT_TOKEN", ""),
			APIURL:        l.httpURL("SLACK_API_URL", "https://slack.com/api"),
		},
		EmailQueueURL:  l.str("EMAIL_QUEUE_URL", ""),
		AWSRegion:      l.str("AWS_REGION", "us-east-1"),
		DynamoDBTable:  l.str("DYNAMODB_TABLE_NAME", "webordinary-edit-sessions"),
		ECSClusterName: l.str("ECS_CLUSTER_NAME", "webordinary-edit-cluster"),
		ECSServiceName: l.str("ECS_SERVICE_NAME", "webordinary-edit-service"),
	}
	switch lv := strings.ToLower(l.str("HERMES_LOG_LEVEL", "info")); lv {
	case "debug", "info", "warn", "error":
		_ = c.LogLevel.UnmarshalText([]byte(lv))
	default:
		l.fail("HERMES_LOG_LEVEL", "%q is not one of debug, info, warn, error", lv)
	}
	if c.BasePath != "" && (!basePathPattern().MatchString(c.BasePath) || strings.Contains(c.BasePath, "/..")) {
		l.fail("BASE_PATH", "%q must look like /hermes: a leading slash, no trailing slash, URL-safe segments", c.BasePath)
	}
	if c.Host != "" && net.ParseIP(c.Host) == nil && c.Host != "localhost" {
		l.fail("HERMES_HOST", "%q is not an IP address or localhost", c.Host)
	}
	if c.PprofAddr = l.str("HERMES_PPROF_ADDR", ""); c.PprofAddr != "" {
		host, port, err := net.SplitHostPort(c.PprofAddr)
		if ip := net.ParseIP(host); err != nil || !validPort(port) || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
			l.fail("HERMES_PPROF_ADDR", "%q must be a loopback host:port such as 127.0.0.1:6060", c.PprofAddr)
		}
	}
	if c.DataDir == "" {
		l.fail("HERMES_DATA_DIR", "must not be empty")
	}
	c.PublicURL = l.httpURL("HERMES_PUBLIC_URL", fmt.Sprintf("http://localhost:%d", c.Port))
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	if getenv("HERMES_PUBLIC_URL") == "" {
		c.PublicURL += c.BasePath
	}
	if strings.EqualFold(c.SMTPAddr, "off") {
		c.SMTPAddr = ""
	} else if _, port, err := net.SplitHostPort(c.SMTPAddr); err != nil || !validPort(port) {
		l.fail("HERMES_SMTP_ADDR", "%q must be host:port or off", c.SMTPAddr)
	}
	if _, ok := hermes.NormalizeEmail(c.FromEmail); !ok {
		l.fail("HERMES_FROM_EMAIL", "%q is not a bare email address", c.FromEmail)
	}
	if v := getenv("SMTP_URL"); v != "" {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "smtp" && u.Scheme != "smtps") || u.Hostname() == "" {
			l.fail("SMTP_URL", "must look like smtp://user:pass@host:port or smtps://…") // never echo: it may hold a password
		} else {
			c.SMTPURL = u
		}
	}
	if c.Mailer == "smtp" && c.SMTPURL == nil {
		l.fail("HERMES_MAILER", "smtp needs SMTP_URL")
	}
	c.QueueCleanupAfter = l.duration("HERMES_QUEUE_CLEANUP_AFTER", 7*24*time.Hour, 0)
	c.QueuePrefix = l.str("HERMES_QUEUE_PREFIX", DefaultQueuePrefix)
	if n := MaxQueuePrefixLen; len(c.QueuePrefix) > n || !hermes.ValidQueueName(c.QueuePrefix) {
		l.fail("HERMES_QUEUE_PREFIX", "%q must be 1-%d letters, digits, hyphens or underscores (queue names stay within SQS's %d characters)",
			c.QueuePrefix, n, hermes.MaxQueueNameLen)
	}
	c.Model = l.oneOf("HERMES_MODEL", "keywords", "keywords", "bedrock")
	c.Bedrock = Bedrock{
		ModelID:        l.str("BEDROCK_MODEL_ID", "anthropic.claude-3-haiku-20240307-v1:0"),
		SummaryModelID: l.str("BEDROCK_SUMMARY_MODEL_ID", ""),
		Temperature:    l.float("BEDROCK_TEMPERATURE", 0, 0, 1),
		TopP:           l.float("BEDROCK_TOP_P", 0.95, 0.01, 1),
		MaxTokens:      int(l.float("BEDROCK_MAX_TOKENS", 2048, 16, 1<<16)),
		Timeout:        l.duration("BEDROCK_TIMEOUT", 10*time.Second, 100*time.Millisecond),
	}
	c.ECS = l.ecs(c.Runner == "ecs")
	c.Breaker = Breaker{
		Failures: int(l.float("HERMES_BREAKER_FAILURES", 5, 1, 1000)),
		Cooldown: l.duration("HERMES_BREAKER_COOLDOWN", 30*time.Second, 100*time.Millisecond),
	}
	c.Preview = l.preview()
	c.Git = l.git()
	c.EMF = l.boolean("HERMES_METRICS_EMF", c.Env == "production")
	c.EMFInterval = l.duration("HERMES_METRICS_EMF_INTERVAL", time.Minute, time.Second)
	c.SESPolicy = l.sesPolicy("HERMES_SES_REQUIRE")
	c.APIKeys = l.apiKeys("HERMES_API_KEYS")
	c.JWT = l.jwt()
	return c, l.err()
}

func (l *loader) sesPolicy(name string) ses.Policy {
	v := l.getenv(name)
	if strings.TrimSpace(v) == "" {
		return ses.DefaultPolicy()
	}
	var p ses.Policy
	if strings.TrimSpace(v) == "none" {
		return p
	}
	for _, x := range strings.Split(v, ",") {
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "spf":
			p.RequireSPF = true
		case "dkim":
			p.RequireDKIM = true
		case "dmarc":
			p.RequireDMARC = true
		default:
			l.fail(name, "%q is not spf, dkim, dmarc or none", x)
		}
	}
	return p
}

func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0 && n <= 65535
}

type loader struct {
	getenv func(string) string
	errs   []error
}

func (l *loader) fail(name, format string, args ...any) {
	l.errs = append(l.errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
}

func (l *loader) err() error { return errors.Join(l.errs...) }

func (l *loader) str(name, def string) string {
	if v := strings.TrimSpace(l.getenv(name)); v != "" {
		return v
	}
	return def
}

func (l *loader) oneOf(name, def string, allowed ...string) string {
	v := l.str(name, def)
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	l.fail(name, "%q is not one of %s", v, strings.Join(allowed, ", "))
	return def
}

func (l *loader) port(name string, def int) int {
	v := l.str(name, strconv.Itoa(def))
	if !validPort(v) {
		l.fail(name, "%q is not a port number (0-65535)", v)
		return def
	}
	n, _ := strconv.Atoi(v)
	return n
}

func (l *loader) duration(name string, def, min time.Duration) time.Duration {
	v := l.getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < min {
		l.fail(name, "%q is not a Go duration of at least %s (like 30m or 90s)", v, min)
		return def
	}
	return d
}

func (l *loader) float(name string, def, min, max float64) float64 {
	v := l.str(name, "")
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < min || f > max {
		l.fail(name, "%q is not a number from %g to %g", v, min, max)
		return def
	}
	return f
}

var (
	ecsIDPattern   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(subnet|sg)-[0-9a-f]{8,17}$`) })
	ecsNamePattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`) })
)

// ecs reads the ECS runner's variables; required ones only when used.
func (l *loader) ecs(used bool) ECS {
	e := ECS{
		TaskDefinition: l.str("ECS_TASK_DEFINITION", ""),
		ContainerName:  l.str("ECS_CONTAINER_NAME", "worker"),
		Subnets:        l.list("ECS_SUBNETS"),
		SecurityGroups: l.list("ECS_SECURITY_GROUPS"),
		AssignPublicIP: l.boolean("ECS_ASSIGN_PUBLIC_IP", false),
	}
	for _, item := range l.list("ECS_CAPACITY_PROVIDER") {
		parts := strings.Split(item, ":")
		cp := CapacityProvider{Name: parts[0], Weight: 1}
		ok := len(parts) <= 3 && ecsNamePattern().MatchString(cp.Name)
		for i, p := range parts[1:] {
			n, err := strconv.Atoi(p)
			ok = ok && err == nil && n >= 0 && n <= 100000
			if i == 0 {
				cp.Weight = n
			} else {
				cp.Base = n
			}
		}
		if !ok {
			l.fail("ECS_CAPACITY_PROVIDER", "%q is not NAME[:WEIGHT[:BASE]] (e.g. FARGATE_SPOT or FARGATE_SPOT:3,FARGATE:1)", item)
			continue
		}
		e.CapacityProviders = append(e.CapacityProviders, cp)
	}
	for _, v := range []struct {
		name string
		ids  []string
	}{{"ECS_SUBNETS", e.Subnets}, {"ECS_SECURITY_GROUPS", e.SecurityGroups}} {
		for _, id := range v.ids {
			if !ecsIDPattern().MatchString(id) {
				l.fail(v.name, "%q is not a subnet-… or sg-… id", id)
			}
		}
	}
	if len(e.Subnets) > 16 {
		l.fail("ECS_SUBNETS", "at most 16 subnets")
	}
	if len(e.SecurityGroups) > 5 {
		l.fail("ECS_SECURITY_GROUPS", "at most 5 security groups")
	}
	if !ecsNamePattern().MatchString(e.ContainerName) {
		l.fail("ECS_CONTAINER_NAME", "%q is not a container name (letters, digits, _ and -)", e.ContainerName)
	}
	if used {
		if e.TaskDefinition == "" {
			l.fail("ECS_TASK_DEFINITION", "HERMES_RUNNER=ecs needs the worker's task definition (family, family:revision or ARN)")
		}
		if len(e.Subnets) == 0 {
			l.fail("ECS_SUBNETS", "HERMES_RUNNER=ecs needs the subnets of the tasks (comma list of subnet ids)")
		}
	}
	return e
}

var bucketPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`) })

// preview reads the S3 publication of previews.
func (l *loader) preview() Preview {
	p := Preview{
		Bucket:    l.str("HERMES_PREVIEW_BUCKET", ""),
		Prefix:    l.str("HERMES_PREVIEW_PREFIX", s3site.DefaultPrefix),
		PathStyle: l.boolean("HERMES_S3_PATH_STYLE", false),
	}
	if p.Bucket != "" && (!bucketPattern().MatchString(p.Bucket) || strings.Contains(p.Bucket, "..")) {
		l.fail("HERMES_PREVIEW_BUCKET", "%q is not an S3 bucket name (3-63 lowercase letters, digits, dots and hyphens)", p.Bucket)
	}
	if err := s3site.CheckPrefix(p.Prefix); err != nil {
		l.fail("HERMES_PREVIEW_PREFIX", "%s", hermes.ErrorMessage(err))
	}
	return p
}

// git reads the workers' git credentials. Errors never show the token.
func (l *loader) git() Git {
	g := Git{Token: l.str("HERMES_GIT_TOKEN", ""), Username: l.str("HERMES_GIT_USERNAME", "x-access-token")}
	if strings.ContainsFunc(g.Token, unicode.IsControl) || strings.ContainsAny(g.Token, " \t") {
		l.fail("HERMES_GIT_TOKEN", "must not contain spaces or control characters")
	}
	if strings.ContainsFunc(g.Username, unicode.IsControl) || strings.ContainsAny(g.Username, ": \t") {
		l.fail("HERMES_GIT_USERNAME", "%q must not contain a colon, spaces or control characters", g.Username)
	}
	return g
}

// list reads a comma-separated list, spaces and empty items dropped.
func (l *loader) list(name string) []string {
	var out []string
	for item := range strings.SplitSeq(l.str(name, ""), ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func (l *loader) boolean(name string, def bool) bool {
	switch strings.ToLower(l.str(name, "")) {
	case "":
		return def
	case "1", "true", "on", "yes":
		return true
	case "0", "false", "off", "no":
		return false
	}
	l.fail(name, "%q is not on or off (1/0, true/false)", l.getenv(name))
	return def
}

func (l *loader) httpURL(name, def string) string {
	v := l.str(name, def)
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		l.fail(name, "%q is not an absolute http(s) URL", v)
		return def
	}
	return v
}

// apiKeys parses KEY=SCOPE,KEY=SCOPE. Errors name the entry by position,
// never by its key.
func (l *loader) apiKeys(name string) []APIKey {
	v := l.getenv(name)
	if strings.TrimSpace(v) == "" {
		return nil
	}
	var keys []APIKey
	seen := map[[sha256.Size]byte]bool{}
	for i, entry := range strings.Split(v, ",") {
		key, scope, ok := strings.Cut(strings.TrimSpace(entry), "=")
		if !ok {
			l.fail(name, "entry %d is not KEY=SCOPE", i+1)
			continue
		}
		if len(key) < MinAPIKeyLen || strings.ContainsAny(key, " \t\"'") {
			l.fail(name, "entry %d: the key must be at least %d characters without spaces or quotes", i+1, MinAPIKeyLen)
			continue
		}
		s, err := ParseScope(scope)
		if err != nil {
			l.fail(name, "entry %d: %v", i+1, err)
			continue
		}
		h := sha256.Sum256([]byte(key))
		if seen[h] {
			l.fail(name, "entry %d repeats an earlier key", i+1)
			continue
		}
		seen[h] = true
		keys = append(keys, APIKey{Hash: h, Scope: s})
	}
	return keys
}

func (l *loader) jwt() JWTConfig {
	j := JWTConfig{
		Issuer:     l.str("HERMES_JWT_ISSUER", ""),
		Audience:   l.str("HERMES_JWT_AUDIENCE", ""),
		ScopeClaim: l.str("HERMES_JWT_SCOPE_CLAIM", "scope"),
	}
	if s := l.getenv("HERMES_JWT_SECRET"); s != "" {
		if len(s) < 32 {
			l.fail("HERMES_JWT_SECRET", "must be at least 32 bytes for HS256")
		} else {
			j.Secret = []byte(s)
		}
	}
	if v := strings.TrimSpace(l.getenv("HERMES_JWT_PUBLIC_KEY")); v != "" {
		pem := []byte(v)
		if !strings.HasPrefix(v, "-----BEGIN") {
			b, err := os.ReadFile(v)
			if err != nil {
				l.fail("HERMES_JWT_PUBLIC_KEY", "neither PEM text nor a readable file: %v", err)
				return j
			}
			pem = b
		}
		key, err := jwt.ParseRSAPublicKeyFromPEM(pem)
		if err != nil {
			l.fail("HERMES_JWT_PUBLIC_KEY", "not an RSA public key in PEM: %v", err)
		} else {
			j.PublicKey = key
		}
	}
	if j.Enabled() || j.Issuer != "" || j.Audience != "" {
		if !j.Enabled() {
			l.fail("HERMES_JWT_SECRET", "JWT issuer/audience set without HERMES_JWT_SECRET or HERMES_JWT_PUBLIC_KEY")
		}
		if j.Issuer == "" {
			l.fail("HERMES_JWT_ISSUER", "is required when JWTs are enabled")
		}
		if j.Audience == "" {
			l.fail("HERMES_JWT_AUDIENCE", "is required when JWTs are enabled")
		}
	}
	return j
}

// Getenv returns a getenv function over a fixed map, for tests and for
// layering values over the process environment.
func Getenv(m map[string]string, fallback func(string) string) func(string) string {
	return func(k string) string {
		if v, ok := m[k]; ok {
			return v
		}
		if fallback != nil {
			return fallback(k)
		}
		return ""
	}
}

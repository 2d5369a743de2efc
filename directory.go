package hermes

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Client is a tenant: a customer business with projects and users.
type Client struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Project is one website of a client: a git repository and the addresses
// its edit requests arrive at. The worker uses RepoURL, DefaultBranch,
// Agent, Build (run after each commit; its output directory is published as
// the thread's preview), BusyPolicy (whether a newer message interrupts the
// running job) and Push (git push origin thread-{threadId} after each
// commit, so that the thread's work also lives in the origin).
type Project struct {
	ClientID           string    `json:"clientId"`
	ID                 string    `json:"id"`
	Name               string    `json:"name,omitempty"`
	RepoURL            string    `json:"repoUrl"`
	DefaultBranch      string    `json:"defaultBranch"`
	EmailAddresses     []string  `json:"emailAddresses"`
	SMSNumbers         []string  `json:"smsNumbers"`
	SlackChannels      []string  `json:"slackChannels"`
	PreviewURLTemplate string    `json:"previewUrlTemplate,omitempty"`
	Build              *Build    `json:"build,omitempty"`
	Agent              Agent     `json:"agent"`
	BusyPolicy         string    `json:"busyPolicy"`
	Acknowledge        *bool     `json:"acknowledge"`    // nil means true (set by Normalize)
	Push               bool      `json:"push,omitempty"` // push thread-{threadId} to origin after each commit
	CreatedAt          time.Time `json:"createdAt"`
	UpdatedAt          time.Time `json:"updatedAt"`
}

// Build is a project's optional build step; its output directory is
// published as the thread's preview.
type Build struct {
	Command   []string `json:"command"`
	OutputDir string   `json:"outputDir"`
}

// Agent selects the program that applies instructions in the container.
type Agent struct {
	Kind    string   `json:"kind"`              // AgentClaude or AgentCommand
	Command []string `json:"command,omitempty"` // argv of a command agent
	Model   string   `json:"model,omitempty"`   // model of the claude agent
	Args    []string `json:"args,omitempty"`    // extra arguments of the claude agent
}

// Agent kinds and busy policies.
const (
	AgentClaude  = "claude"
	AgentCommand = "command"

	BusyInterrupt = "interrupt" // a new message stops the running job (default)
	BusyQueue     = "queue"     // a new message waits for the running job
)

// User is a person allowed to edit a client's projects, known by verified
// identities: email addresses, phone numbers and chat ids.
type User struct {
	ClientID  string    `json:"clientId"`
	ID        string    `json:"id"`
	Name      string    `json:"name,omitempty"`
	Emails    []string  `json:"emails"`
	Phones    []string  `json:"phones"`
	ChatIDs   []string  `json:"chatIds"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Address kinds: how a project is reached and how a user is identified.
const (
	AddressEmail = "email"
	AddressSMS   = "sms"
	AddressChat  = "chat"
)

const maxNameLen = 200

var (
	gitRefPattern      = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$`) })
	previewPlaceholder = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\{[^}]*\}`) })
	previewNames       = map[string]bool{"{client}": true, "{project}": true, "{thread}": true, "{session}": true, "{user}": true}
)

// Validate checks the client's fields, adding failures to v under prefix.
func (c *Client) Validate(v *ValidationError, prefix string) {
	validSlugField(v, prefix+"id", c.ID)
	validName(v, prefix+"name", c.Name, true)
}

// Normalize fills defaults and canonical forms (lowercase emails, default
// branch, busy policy) before Validate. It returns the project for chaining.
func (p *Project) Normalize() *Project {
	if p.DefaultBranch == "" {
		p.DefaultBranch = "main"
	}
	if p.BusyPolicy == "" {
		p.BusyPolicy = BusyInterrupt
	}
	if p.Acknowledge == nil {
		t := true
		p.Acknowledge = &t
	}
	if p.Agent.Kind == "" {
		p.Agent.Kind = AgentClaude
	}
	p.EmailAddresses = normalizeEmails(nonNil(p.EmailAddresses))
	p.SMSNumbers = nonNil(p.SMSNumbers)
	p.SlackChannels = nonNil(p.SlackChannels)
	return p
}

// Validate checks the project's fields, adding failures to v under prefix.
func (p *Project) Validate(v *ValidationError, prefix string) {
	validSlugField(v, prefix+"id", p.ID)
	validName(v, prefix+"name", p.Name, false)
	switch {
	case p.RepoURL == "":
		v.Add(prefix+"repoUrl", "is required (a local path, file://, https:// or ssh URL)")
	case len(p.RepoURL) > 2048 || strings.HasPrefix(p.RepoURL, "-") || strings.ContainsAny(p.RepoURL, "\x00\n\r"):
		v.Add(prefix+"repoUrl", "is not a usable repository location")
	}
	if !validGitRef(p.DefaultBranch) {
		v.Add(prefix+"defaultBranch", "%q is not a valid branch name", p.DefaultBranch)
	}
	for i, e := range p.EmailAddresses {
		if _, ok := NormalizeEmail(e); !ok {
			v.Add(fmt.Sprintf("%semailAddresses[%d]", prefix, i), "%q is not a valid email address", e)
		}
	}
	for i, n := range p.SMSNumbers {
		if !ValidE164(n) {
			v.Add(fmt.Sprintf("%ssmsNumbers[%d]", prefix, i), "%q is not an E.164 phone number (like +15550100001)", n)
		}
	}
	for i, c := range p.SlackChannels {
		if !ValidChatID(c) {
			v.Add(fmt.Sprintf("%sslackChannels[%d]", prefix, i), "%q is not a valid channel id", c)
		}
	}
	uniqueField(v, prefix+"emailAddresses", p.EmailAddresses)
	uniqueField(v, prefix+"smsNumbers", p.SMSNumbers)
	uniqueField(v, prefix+"slackChannels", p.SlackChannels)
	if t := p.PreviewURLTemplate; t != "" {
		u, err := url.Parse(previewPlaceholder().ReplaceAllString(t, "x"))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.Add(prefix+"previewUrlTemplate", "must be an absolute http(s) URL")
		}
		for _, ph := range previewPlaceholder().FindAllString(t, -1) {
			if !previewNames[ph] {
				v.Add(prefix+"previewUrlTemplate", "unknown placeholder %s (allowed: {client}, {project}, {user}, {thread}, {session})", ph)
			}
		}
	}
	if b := p.Build; b != nil {
		validArgv(v, prefix+"build.command", b.Command)
		if b.OutputDir == "" || path.IsAbs(b.OutputDir) || strings.Contains(b.OutputDir, "\\") ||
			path.Clean(b.OutputDir) != b.OutputDir || b.OutputDir == ".." || strings.HasPrefix(b.OutputDir, "../") {
			v.Add(prefix+"build.outputDir", "must be a clean relative path inside the repository")
		}
	}
	switch p.Agent.Kind {
	case AgentCommand:
		validArgv(v, prefix+"agent.command", p.Agent.Command)
	case AgentClaude:
		if len(p.Agent.Command) > 0 {
			v.Add(prefix+"agent.command", "is only for agents of kind %q", AgentCommand)
		}
	default:
		v.Add(prefix+"agent.kind", "must be %q or %q", AgentClaude, AgentCommand)
	}
	if p.BusyPolicy != BusyInterrupt && p.BusyPolicy != BusyQueue {
		v.Add(prefix+"busyPolicy", "must be %q or %q", BusyInterrupt, BusyQueue)
	}
}

// Acknowledges reports whether the project sends acknowledgements.
func (p *Project) Acknowledges() bool { return p.Acknowledge == nil || *p.Acknowledge }

// Addresses returns the project's inbound addresses by kind.
func (p *Project) Addresses() map[string][]string {
	return map[string][]string{AddressEmail: p.EmailAddresses, AddressSMS: p.SMSNumbers, AddressChat: p.SlackChannels}
}

// Normalize fills canonical forms (lowercase emails, empty lists) before
// Validate. It returns the user for chaining.
func (u *User) Normalize() *User {
	u.Emails = normalizeEmails(nonNil(u.Emails))
	u.Phones = nonNil(u.Phones)
	u.ChatIDs = nonNil(u.ChatIDs)
	return u
}

// Validate checks the user's fields, adding failures to v under prefix.
func (u *User) Validate(v *ValidationError, prefix string) {
	validSlugField(v, prefix+"id", u.ID)
	validName(v, prefix+"name", u.Name, false)
	for i, e := range u.Emails {
		if _, ok := NormalizeEmail(e); !ok {
			v.Add(fmt.Sprintf("%semails[%d]", prefix, i), "%q is not a valid email address", e)
		}
	}
	for i, n := range u.Phones {
		if !ValidE164(n) {
			v.Add(fmt.Sprintf("%sphones[%d]", prefix, i), "%q is not an E.164 phone number (like +15550100002)", n)
		}
	}
	for i, c := range u.ChatIDs {
		if !ValidChatID(c) {
			v.Add(fmt.Sprintf("%schatIds[%d]", prefix, i), "%q is not a valid chat user id", c)
		}
	}
	uniqueField(v, prefix+"emails", u.Emails)
	uniqueField(v, prefix+"phones", u.Phones)
	uniqueField(v, prefix+"chatIds", u.ChatIDs)
}

// Identities returns the user's identities by kind.
func (u *User) Identities() map[string][]string {
	return map[string][]string{AddressEmail: u.Emails, AddressSMS: u.Phones, AddressChat: u.ChatIDs}
}

func validSlugField(v *ValidationError, field, s string) {
	switch {
	case s == "":
		v.Add(field, "is required")
	case !ValidSlug(s):
		v.Add(field, "%q must be 1-%d lowercase letters, digits or inner hyphens", s, MaxSlugLen)
	}
}

func validName(v *ValidationError, field, s string, required bool) {
	switch {
	case s == "" && required:
		v.Add(field, "is required")
	case !utf8.ValidString(s) || len(s) > maxNameLen || strings.ContainsAny(s, "\x00\r\n"):
		v.Add(field, "must be one line of at most %d bytes of UTF-8", maxNameLen)
	}
}

func validArgv(v *ValidationError, field string, argv []string) {
	if len(argv) == 0 || argv[0] == "" {
		v.Add(field, "must be a non-empty argument list, program first")
		return
	}
	for i, a := range argv {
		if strings.ContainsRune(a, 0) || !utf8.ValidString(a) {
			v.Add(fmt.Sprintf("%s[%d]", field, i), "must be UTF-8 without NUL bytes")
		}
	}
}

func validGitRef(s string) bool {
	return gitRefPattern().MatchString(s) && !strings.Contains(s, "..") && !strings.Contains(s, "//") &&
		!strings.HasSuffix(s, "/") && !strings.HasSuffix(s, ".lock") && !strings.HasSuffix(s, ".")
}

func uniqueField(v *ValidationError, field string, xs []string) {
	seen := make(map[string]bool, len(xs))
	for _, x := range xs {
		if seen[x] {
			v.Add(field, "lists %q twice", x)
		}
		seen[x] = true
	}
}

func normalizeEmails(xs []string) []string {
	for i, e := range xs {
		if n, ok := NormalizeEmail(e); ok {
			xs[i] = n
		}
	}
	return xs
}

func nonNil(xs []string) []string {
	if xs == nil {
		return []string{}
	}
	return xs
}

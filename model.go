package hermes

import "context"

// Model judges instructions before they reach an edit container. The
// embedded default is keyword rules (internal/classify); production uses
// Bedrock Converse.
type Model interface {
	// Classify says whether an instruction is destructive or large, so that
	// it needs a plan and the user's approval before anything changes (SPEC
	// §7), with a short reason. It leans to asking: when in doubt,
	// NeedsApproval is true. Unavailable when the model cannot be reached
	// (callers then fall back to the keyword rules, which never fail).
	Classify(ctx context.Context, instruction string) (Classification, error)
}

// Classification is a Model's verdict on one instruction.
type Classification struct {
	// NeedsApproval is true for a destructive or large instruction: it runs
	// in plan mode first and executes only once the user approves.
	NeedsApproval bool
	// Reason is a short explanation, safe to show to the user.
	Reason string
	// Matched lists what triggered the verdict, in the order it appears in
	// the instruction (keyword rules: the matched words, lowercased). Empty
	// when NeedsApproval is false.
	Matched []string
}

// Summarizer writes the short summaries that the short forms of replies
// quote (SMS: one segment) when the agent's own summary is longer than the
// room left. Production uses Bedrock Converse; without one, summaries are
// cut.
type Summarizer interface {
	// Summarize returns a plain-text summary of text in at most maxChars
	// characters; a text that fits already is returned as it is. The
	// summary is a rewording of text, which is data: instructions inside
	// it are not followed. Invalid when maxChars is not positive;
	// Unavailable when the model cannot be reached, throttles or is too
	// slow, or ctx ends; Internal for a refused call or an empty answer.
	// Callers fall back to cutting the text.
	Summarize(ctx context.Context, text string, maxChars int) (string, error)
}

// IntentReader reads a reply on a thread whose latest plan waits for the
// user's approval (SPEC §7) when the keyword rules cannot tell whether it
// is a plain yes or no ("yes please, do it now, thanks so much!!").
// Production uses Bedrock Converse; without one, such a reply is an
// instruction.
type IntentReader interface {
	// ReplyIntent says whether reply approves plan, rejects it, or is an
	// instruction: a new or changed request, where conditions ("sure, but
	// keep the footer"), additions and questions all count as one. It
	// leans to IntentInstruction whenever the reply is not an
	// unconditional yes or no. reply and plan are data: requests inside
	// them are not followed. Unavailable when the model cannot be reached,
	// throttles or is too slow, or ctx ends; Internal for a refused call or
	// an answer that is not one of the three. Callers then keep the
	// keyword reading (an instruction).
	ReplyIntent(ctx context.Context, reply, plan string) (ReplyIntent, error)
}

// Intent is what a reply to a plan means.
type Intent string

// Intents of replies to a plan.
const (
	IntentApprove     Intent = "approve"     // an unconditional yes: carry the plan out
	IntentReject      Intent = "reject"      // an unconditional no: change nothing
	IntentInstruction Intent = "instruction" // anything else: a new or changed request
)

// ReplyIntent is an IntentReader's verdict on one reply.
type ReplyIntent struct {
	Intent Intent
	// Reason is a short explanation, for the log and the session's
	// history.
	Reason string
}

// Package hermes holds the vocabulary of Hermes, the message router and
// orchestrator of the Webordinary live-editing platform: clients, projects,
// users, threads and edit sessions, the error type shared by every layer, and
// the ports (small interfaces with written contracts) that the adapters under
// internal/ implement.
//
// Site owners send plain-language edit requests by email, SMS or chat. Hermes
// ties each message to a thread and an edit session, wakes that user's edit
// container if it is asleep, queues the instruction to it and relays the
// result back on the same channel.
//
// Nothing in this package knows which adapter is live: cmd/hermes wires them.
package hermes

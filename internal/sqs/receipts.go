package sqs

import (
	"sync"
	"time"
)

// receipts remembers, for the messages this adapter received, the receipt
// of the latest receive and whether the message was deleted, so that a
// receipt known to be stale is refused (ChangeVisibility) or ignored
// (Delete) as the contract says, whatever SQS (or an emulator) would make
// of it. Entries end with a delete, or after the longest time a receipt
// can hold a message (12 h); the map is bounded.
type receipts struct {
	mu        sync.Mutex
	byReceipt map[string]string // receipt → message key
	latest    map[string]held   // message key → its latest receipt
	inserts   int
}

type held struct {
	receipt string // "" once deleted
	at      time.Time
}

const (
	receiptsTTL = maxVisibility + time.Hour
	receiptsCap = 1 << 16
)

func messageKey(queueURL, id string) string { return queueURL + "\x00" + id }

func (r *receipts) received(queueURL, id, receipt string) {
	if id == "" || receipt == "" {
		return
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.latest == nil {
		r.byReceipt, r.latest = map[string]string{}, map[string]held{}
	}
	k := messageKey(queueURL, id)
	r.byReceipt[receipt] = k
	r.latest[k] = held{receipt: receipt, at: now}
	r.inserts++
	if r.inserts%1024 == 0 || len(r.byReceipt) > receiptsCap {
		r.prune(now)
	}
}

// prune drops entries older than receiptsTTL and, if that is not enough,
// everything (the adapter then only knows what SQS says).
func (r *receipts) prune(now time.Time) {
	for k, h := range r.latest {
		if now.Sub(h.at) > receiptsTTL {
			delete(r.latest, k)
		}
	}
	for rc, k := range r.byReceipt {
		if _, ok := r.latest[k]; !ok {
			delete(r.byReceipt, rc)
		}
	}
	if len(r.byReceipt) > receiptsCap {
		r.byReceipt, r.latest = map[string]string{}, map[string]held{}
	}
}

// stale reports whether receipt is known not to hold its message any more:
// the message was received again, or deleted, through this adapter.
func (r *receipts) stale(receipt string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	k, ok := r.byReceipt[receipt]
	if !ok {
		return false
	}
	h, ok := r.latest[k]
	return ok && h.receipt != receipt
}

// deleted records that the message of receipt is gone.
func (r *receipts) deleted(receipt string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k, ok := r.byReceipt[receipt]
	if !ok {
		return
	}
	// Keep a tombstone (receipt "") so that later uses of any of its
	// receipts are known stale; it goes with the TTL.
	r.latest[k] = held{at: time.Now()}
}

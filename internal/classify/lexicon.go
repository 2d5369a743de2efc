package classify

// kind is what a word can do in the instruction rules (a set of bits).
type kind uint16

const (
	large       kind = 1 << iota // needs approval by itself
	destructive                  // needs approval with a scope nearby
	scope                        // a noun naming much content
	quant                        // a quantifier: always a scope
	part                         // after a scope noun, makes it a modifier
	prep                         // ends a destructive verb's window
	aux                          // be/get: the passive
	modal                        // skipped between a passive's subject and its be/get
)

// lexicon maps every listed form of a word to its base form and kind.
// Words that only occur in phrases have kind 0.
var lexicon = map[string]entry{}

type entry struct {
	lemma string
	kind  kind
}

func init() {
	// forms adds a word with its inflections; a word listed twice keeps
	// its first lemma and gets both kinds ("to" ends a window and is
	// skipped in a passive).
	forms := func(k kind, lemma string, more ...string) {
		for _, f := range append([]string{lemma}, more...) {
			e, ok := lexicon[f]
			if !ok {
				e.lemma = lemma
			}
			e.kind |= k
			lexicon[f] = e
		}
	}
	each := func(k kind, ws ...string) {
		for _, w := range ws {
			forms(k, w)
		}
	}

	forms(large, "wipe", "wipes", "wiped", "wiping")
	forms(large, "destroy", "destroys", "destroyed", "destroying", "destruction")
	forms(large, "reset", "resets", "resetting")
	forms(large, "rebuild", "rebuilds", "rebuilt", "rebuilding")
	forms(large, "migrate", "migrates", "migrated", "migrating", "migration", "migrations")
	forms(large, "redesign", "redesigns", "redesigned", "redesigning")
	forms(large, "restructure", "restructures", "restructured", "restructuring")
	forms(large, "overhaul", "overhauls", "overhauled", "overhauling")
	forms(large, "revamp", "revamps", "revamped", "revamping")

	forms(destructive, "delete", "deletes", "deleted", "deleting", "deletion")
	forms(destructive, "remove", "removes", "removed", "removing", "removal")
	forms(destructive, "drop", "drops", "dropped", "dropping")
	forms(destructive, "erase", "erases", "erased", "erasing")
	forms(destructive, "clear", "clears", "cleared", "clearing")
	forms(destructive, "purge", "purges", "purged", "purging")
	forms(destructive, "rewrite", "rewrites", "rewrote", "rewritten", "rewriting")
	forms(destructive, "refactor", "refactors", "refactored", "refactoring")
	forms(destructive, "replace", "replaces", "replaced", "replacing")
	forms(destructive, "revert", "reverts", "reverted", "reverting")

	each(quant, "all", "everything", "every", "entire", "whole")
	forms(scope, "site", "sites", "website", "websites")
	forms(scope, "page", "pages", "webpage", "webpages")
	forms(scope, "homepage", "homepages")
	forms(scope, "section", "sections")
	forms(scope, "blog", "blogs")
	forms(scope, "gallery", "galleries")
	forms(scope, "database", "databases")
	each(scope, "data", "images", "photos", "pictures", "files", "posts", "articles",
		"products", "users", "accounts", "records", "tables")

	each(part, "title", "titles", "header", "headers", "heading", "headings", "footer",
		"footers", "background", "backgrounds", "link", "links", "logo", "logos", "icon",
		"icons", "name", "names", "number", "numbers", "color", "colors", "colour",
		"colours", "font", "fonts", "break", "breaks", "margin", "margins", "padding",
		"width", "height", "border", "borders", "button", "buttons", "banner", "banners")

	each(prep, "in", "on", "from", "at", "to", "into", "onto", "inside", "within", "under",
		"above", "below", "near", "for", "by", "after", "before", "between", "beside",
		"next", "across", "throughout")

	each(aux, "be", "is", "are", "was", "were", "been", "being")
	forms(aux, "get", "gets", "got", "getting", "gotten")
	each(modal, "should", "must", "can", "could", "will", "would", "shall", "may",
		"might", "to", "has", "have", "had", "need", "needs", "please", "also", "now")

	// Words of phrases only.
	forms(0, "change", "changes")
	forms(0, "update", "updates")
	forms(0, "start", "starts", "started", "starting")
	forms(0, "take", "takes", "took", "taken", "taking")
}

// largePhrases need approval by themselves (lemmas).
var largePhrases = [][]string{
	{"major", "change"},
	{"major", "update"},
	{"major", "rewrite"},
	{"start", "over"},
	{"from", "scratch"},
	{"all", "page"},
	{"all", "the", "page"},
	{"all", "of", "the", "page"},
	{"every", "page"},
	{"each", "page"},
	{"whole", "site"},
	{"entire", "site"},
}

// verbPhrases are destructive verbs of several words (lemmas).
var verbPhrases = [][]string{
	{"get", "rid", "of"},
	{"take", "down"},
}

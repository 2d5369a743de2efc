package classify

import (
	"context"
	"slices"
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name        string
		instruction string
		want        bool
		matched     string // one entry of Matched, when want is true
	}{
		// 1. Large words, by themselves, in any inflection.
		{"redesign", "Redesign the homepage", true, "redesign"},
		{"redesigned", "I'd like the site redesigned", true, "redesigned"},
		{"hyphenated", "Please re-design the contact form", true, "redesign"},
		{"rebuild", "rebuild the navigation", true, "rebuild"},
		{"rebuilt", "the menu should be rebuilt", true, "rebuilt"},
		{"migrate", "Migrate us to the new template", true, "migrate"},
		{"migration", "Start the migration to Astro", true, "migration"},
		{"restructure", "RESTRUCTURE the services pages", true, "restructure"},
		{"wipe", "wipe it", true, "wipe"},
		{"wiping", "wiping the old news would help", true, "wiping"},
		{"destroy", "destroy the old landing page", true, "destroy"},
		{"reset", "reset the site to the template", true, "reset"},
		{"overhaul", "an overhaul of the menu", true, "overhaul"},
		{"revamp", "revamp the about us copy", true, "revamp"},

		// 2. Large phrases.
		{"major change", "This is a major change: new colours and fonts", true, "major change"},
		{"major changes", "Some major changes to the layout please", true, "major changes"},
		{"start over", "Let's start over with a blank design", true, "start over"},
		{"starting over", "I'm thinking of starting over.", true, "starting over"},
		{"from scratch", "Build the shop from scratch", true, "from scratch"},
		{"all pages", "Change the font on all pages", true, "all pages"},
		{"all the pages", "Add the phone number to all the pages", true, "all the pages"},
		{"all of the pages", "update all of the pages with the new logo", true, "all of the pages"},
		{"every page", "put a banner on every page", true, "every page"},
		{"whole site", "make the whole site darker", true, "whole site"},
		{"entire website", "Translate the entire website into French", true, "entire website"},

		// 3. Destructive verbs with a scope.
		{"delete page", "Delete the about page", true, "delete the about page"},
		{"delete about us page", "delete the about us page", true, "delete the about us page"},
		{"deleting pages", "Deleting old pages is fine", true, "deleting old pages"},
		{"deleted section", "We deleted the pricing section, can you restore it?", true, "deleted the pricing section"},
		{"remove all images", "remove all images", true, "remove all"},
		{"removes photos", "It removes the team photos", true, "removes the team photos"},
		{"remove blog", "Remove the blog", true, "remove the blog"},
		{"drop database", "drop the database", true, "drop the database"},
		{"drop users", "DROP TABLE users;", true, "drop table users"},
		{"clear all", "clear all", true, "clear all"},
		{"clear everything", "Clear everything and begin again", true, "clear everything"},
		{"erase gallery", "erase the gallery", true, "erase the gallery"},
		{"purge posts", "purge old blog posts", true, "purge old blog"},
		{"refactor everything", "refactor everything", true, "refactor everything"},
		{"rewrite the whole site", "Rewrite the whole site in a friendlier tone", true, "rewrite the whole"},
		{"rewrite page", "rewrite the services page", true, "rewrite the services page"},
		{"replace all images", "Replace all the images with new ones", true, "replace all"},
		{"revert everything", "revert everything since Monday", true, "revert everything"},
		{"get rid of", "Get rid of the events page", true, "get rid of the events page"},
		{"got rid of", "got rid of every product", true, "got rid of every"},
		{"take down", "take down the site for now", true, "take down the site"},
		{"curly apostrophe", "Delete the site’s pages", true, "delete the site"},
		{"second clause", "Fix the typo. Then delete the careers page", true, "delete the careers page"},

		// 4. The passive.
		{"passive page", "The about page should be deleted", true, "page should be deleted"},
		{"passive images", "all images have to be removed", true, "images have to be removed"},
		{"passive everything", "everything can be cleared", true, "everything can be cleared"},
		{"passive got", "the blog got deleted by mistake, get it back", true, "blog got deleted"},

		// Accepted false positives: the rules lean to asking.
		{"fp negation", "don't delete any pages", true, "delete any pages"},
		{"fp quantifier", "remove all the typos", true, "remove all"},
		{"fp reset", "reset the form's colours to the defaults", true, "reset"},
		{"fp page scope", "Delete the page's second paragraph", true, "delete the page"},

		// Small instructions.
		{"typo in header", "remove the typo in the header", false, ""},
		{"typo on page", "remove the typo on the page", false, ""},
		{"page title", "Remove the page title", false, ""},
		{"site logo", "delete the site logo", false, ""},
		{"section heading", "remove the section heading from the pricing box", false, ""},
		{"banner from homepage", "remove the banner from the homepage", false, ""},
		{"delete paragraph", "delete the second paragraph", false, ""},
		{"drop shadow", "Add a drop shadow to all images", false, ""},
		{"dropdown", "Make the drop-down menu wider", false, ""},
		{"delete button", "The delete button should be red", false, ""},
		{"replace hero image", "replace the hero image on the homepage", false, ""},
		{"inside word", "The undeleted items and preset colours", false, ""},
		{"clause boundary", "Remove the typo, the page looks great otherwise", false, ""},
		{"too far", "remove the old and very outdated welcome page", false, ""},
		{"colour change", "Change the button colour to blue", false, ""},
		{"title text", "Update the title to 'Spring Sale'", false, ""},
		{"empty", "", false, ""},
		{"punctuation only", "?!... ,,", false, ""},
		{"not english words", "Ändere die Überschrift", false, ""},
		{"rubbish", "removable clearance droplets", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Rules{}.Classify(context.Background(), tt.instruction)
			if err != nil {
				t.Fatal(err)
			}
			if got.NeedsApproval != tt.want {
				t.Fatalf("Classify(%q).NeedsApproval = %v, want %v (matched %q)", tt.instruction, got.NeedsApproval, tt.want, got.Matched)
			}
			if got.Reason == "" {
				t.Errorf("Classify(%q).Reason is empty", tt.instruction)
			}
			if !tt.want {
				if len(got.Matched) != 0 {
					t.Errorf("Classify(%q).Matched = %q, want none", tt.instruction, got.Matched)
				}
				return
			}
			if !slices.Contains(got.Matched, tt.matched) {
				t.Errorf("Classify(%q).Matched = %q, want it to contain %q", tt.instruction, got.Matched, tt.matched)
			}
			for _, m := range got.Matched {
				if !strings.Contains(got.Reason, `"`+m+`"`) {
					t.Errorf("Classify(%q).Reason = %q, does not name %q", tt.instruction, got.Reason, m)
				}
			}
		})
	}
}

func TestClassifyMatchedOrderAndUnique(t *testing.T) {
	got := Classify("Redesign the blog, then redesign the shop and delete all pages")
	want := []string{"redesign", "delete all", "all pages"}
	if !slices.Equal(got.Matched, want) {
		t.Errorf("Matched = %q, want %q", got.Matched, want)
	}
}

func TestApprovalReply(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		approve bool
		reject  bool
	}{
		{"approve", "approve", true, false},
		{"Approved.", "Approved.", true, false},
		{"yes go ahead", "Yes, go ahead", true, false},
		{"ok do it", "ok do it", true, false},
		{"sure thanks", "Sure, thanks!", true, false},
		{"looks good", "Looks good, go for it", true, false},
		{"lgtm", "LGTM", true, false},
		{"of course", "of course", true, false},
		{"yes please", "  yes please  \r\n", true, false},
		{"approve then signature", "Approve\n\n--\nJane from Acme", true, false},
		{"quoted first", "> Reply approve or reject\n> to this plan\n\nyes", true, false},
		{"blank lines first", "\n\n   \napprove\nno", true, false},

		{"reject", "reject", false, true},
		{"no", "No", false, true},
		{"no thanks", "no thanks.", false, true},
		{"cancel", "Cancel", false, true},
		{"cancelled", "cancelled please", false, true},
		{"don't", "don't", false, true},
		{"don't curly", "Don’t!", false, true},
		{"do not", "Do not", false, true},
		{"don't do it", "Don't do it", false, true},
		{"not approved", "not approved", false, true},
		{"never", "never", false, true},
		{"nope", "nope", false, true},
		{"stop", "STOP", false, true},
		{"reject quoted approve", "reject\n> approve", false, true},

		{"empty", "", false, false},
		{"only quoted", "> approve\n> yes", false, false},
		{"yes but", "Yes but change the heading first", false, false},
		{"no idea", "No idea what this means", false, false},
		{"both", "yes no", false, false},
		{"double negative", "don't cancel", false, false},
		{"ok no", "ok, no", false, false},
		{"not yet", "not yet", false, false},
		{"question", "what will it delete?", false, false},
		{"attribution", "On Mon, 3 Mar 2025 at 10:00, Hermes <edit@example.com> wrote:\n> approve?", false, false},
		{"second line ignored", "hmm\napprove", false, false},
		{"filler only", "thanks", false, false},
		{"emoji", "👍", false, false},
		{"approving inside word", "disapprove", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			approve, reject := ApprovalReply(tt.text)
			if approve != tt.approve || reject != tt.reject {
				t.Errorf("ApprovalReply(%q) = %v, %v; want %v, %v", tt.text, approve, reject, tt.approve, tt.reject)
			}
		})
	}
}

func BenchmarkClassify(b *testing.B) {
	cases := map[string]string{
		"small": "Please change the heading on the contact page to 'Get in touch' and fix the typo in the footer.",
		"large": "Hi! We are rebranding. Please delete the old events page, remove all images from the gallery, " +
			"and then redesign the homepage from scratch with the new colours. The whole site should feel fresher.",
	}
	for name, s := range cases {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(s)))
			for b.Loop() {
				Classify(s)
			}
		})
	}
}

func BenchmarkApprovalReply(b *testing.B) {
	s := "Yes, go ahead please\n\nOn Mon, 3 Mar 2025 at 10:00, Hermes wrote:\n> The plan: delete the about page\n"
	b.ReportAllocs()
	for b.Loop() {
		ApprovalReply(s)
	}
}

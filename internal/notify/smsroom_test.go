package notify

import (
	"strings"
	"testing"

	"github.com/webordinary/hermes"
)

func TestSMSSummaryRoom(t *testing.T) {
	long := strings.Repeat("Changed the hero copy and the footer links on every page. ", 10)
	r := done
	r.Summary = long
	// "Amelia: Done: {summary} {preview} ref:2sa27xvk"
	want := SMSMaxSeptets - len("Amelia: Done:") - len(" "+done.PreviewURL) - len(" ref:2sa27xvk") - 1
	room, fits := SMSSummaryRoom(r)
	if room != want || fits {
		t.Fatalf("room %d, fits %v; want %d, false", room, fits, want)
	}
	for _, tc := range []struct {
		name    string
		summary string
		fits    bool
	}{
		{"exactly the room", strings.Repeat("a", room), true},
		{"one over", strings.Repeat("a", room+1), false},
		{"extension characters count two", "a" + strings.Repeat("€", (room-1)/2), true},
		{"one extension character too many", "a" + strings.Repeat("€", (room-1)/2+1), false},
		{"an ellipsis is folded to three dots", strings.Repeat("a", room-3) + "…", true},
		{"a folded ellipsis that no longer fits", strings.Repeat("a", room-2) + "…", false},
		{"line breaks become one space", strings.Repeat("a", room/2-1) + "\n\n" + strings.Repeat("b", room/2), true},
		{"empty", "", false},
		{"no letters", "🎉🎉", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := r
			s.Summary = tc.summary
			got, fits := SMSSummaryRoom(s)
			if got != room || fits != tc.fits {
				t.Fatalf("room %d, fits %v; want %d, %v", got, fits, room, tc.fits)
			}
			msg := ResultSMS(s)
			if n, bad := gsm7Check(msg); bad != 0 || n > SMSMaxSeptets {
				t.Fatalf("%d septets, bad %q: %q", n, bad, msg)
			}
			if !strings.HasSuffix(msg, " "+done.PreviewURL+" ref:2sa27xvk") {
				t.Errorf("link or token lost: %q", msg)
			}
			if tc.fits && !strings.HasPrefix(msg, "Amelia: Done: "+toGSM7(tc.summary)+" "+done.PreviewURL) {
				t.Errorf("a summary that fits was not quoted whole: %q", msg)
			}
		})
	}

	for _, tc := range []struct {
		name string
		r    Result
		room func(int) bool
	}{
		{"a failure quotes its error", Result{Type: hermes.ResultError, Summary: long, Error: "npm run build exited 1"}, func(n int) bool { return n == 0 }},
		{"a failure without an error quotes the summary", Result{Type: hermes.ResultDone, Summary: long}, func(n int) bool { return n > 100 }},
		{"no link, no token: most of the segment", Result{Type: hermes.ResultDone, Success: true, Summary: long},
			func(n int) bool { return n == SMSMaxSeptets-len("Done:")-1 }},
		{"a plan's approval text takes room", Result{ProjectName: "Amelia", Type: hermes.ResultPlan, Summary: long, ApprovalURL: done.PreviewURL, PreviewURL: done.PreviewURL},
			func(n int) bool {
				return n == SMSMaxSeptets-len("Amelia: Plan ready, nothing changed yet: Reply approve or reject, or open "+done.PreviewURL)-1
			}},
		{"no room left by a long link", Result{Type: hermes.ResultDone, Success: true, Summary: long, PreviewURL: "https://e.com/" + strings.Repeat("b", 135)},
			func(n int) bool { return n == 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			room, fits := SMSSummaryRoom(tc.r)
			if !tc.room(room) || fits {
				t.Errorf("room %d, fits %v", room, fits)
			}
		})
	}
}

// TestSMSSummaryRoomMatchesResultSMS: a summary of the room's size is
// quoted whole, for every layout.
func TestSMSSummaryRoomMatchesResultSMS(t *testing.T) {
	for _, project := range []string{"", "Amelia", strings.Repeat("Project ", 10)} {
		for _, link := range []string{"", done.PreviewURL, "https://e.com/" + strings.Repeat("b", 120)} {
			for _, typ := range []string{hermes.ResultDone, hermes.ResultInterrupted, hermes.ResultPlan} {
				r := Result{ProjectName: project, Type: typ, Success: true, PreviewURL: link, ApprovalURL: link, Token: "2sa27xvk"}
				r.Summary = strings.Repeat("x", 400)
				room, _ := SMSSummaryRoom(r)
				if room == 0 {
					continue
				}
				r.Summary = strings.Repeat("x", room)
				if _, fits := SMSSummaryRoom(r); !fits {
					t.Fatalf("%+v: a summary of %d does not fit its own room", r, room)
				}
				msg := ResultSMS(r)
				if n, bad := gsm7Check(msg); bad != 0 || n > SMSMaxSeptets || !strings.Contains(msg, " "+r.Summary) || strings.Contains(msg, "x...") {
					t.Fatalf("%d septets, bad %q: %q", n, bad, msg)
				}
			}
		}
	}
}

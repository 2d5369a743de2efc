// Package hermestest holds what the tests of several Hermes packages share:
// fakes of the ports of package hermes, fixtures (valid clients, projects,
// users, threads, sessions and history entries at fixed times), and the
// contract suites that every adapter of a port must pass.
//
// A contract suite is the executable form of the comments on a port. It
// relies only on what those comments promise (error kinds through
// hermes.ErrorKind, ordering rules, millisecond precision of times in UTC,
// opaque cursors) and never on how an adapter works, so that the embedded
// adapter and the production one run the same suite unchanged:
//
//	func TestStore(t *testing.T) {
//		hermestest.StoreSuite(t, hermestest.StoreOpener{
//			New:    func(t *testing.T) hermes.Store { ... a store on a fresh database ... },
//			Reopen: func(t *testing.T, s hermes.Store) hermes.Store { ... a second handle on s's database ... },
//		})
//	}
//
// QueueSuite does the same for hermes.Queues (run with a QueueOpener); as
// queues are about time and an SQS adapter cannot take a fake clock, it runs
// on the real clock with short visibility timeouts and waits.
//
// The suites check themselves against plain in-memory reference
// implementations (this package's tests); QueueSuite's self-test also
// plants bugs in its reference and checks that the suite catches each one.
//
// This package is imported by tests only: nothing in cmd/ or in an adapter's
// non-test code may import it.
package hermestest

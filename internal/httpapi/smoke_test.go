package httpapi_test

import (
	"net/http"
	"testing"
)

func TestSessionLifecycle(t *testing.T) {
	a := newTestAPI(t)
	id := a.activate(t, adminKey)
	a.do(t, request{Method: "GET", Path: "/api/sessions/" + id + "/status", Key: ameliaKey}).want(t, http.StatusOK)
	a.do(t, request{Method: "GET", Path: "/api/sessions/" + id + "/status", Key: otherKey}).want(t, http.StatusNotFound).Problem(t)
}

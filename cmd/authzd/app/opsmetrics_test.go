package app_test

import (
	"io"
	"net/http"
	"regexp"
	"testing"

	"github.com/scailabs/authzd/cmd/authzd/app/apptest"
)

// TestOperationalMetrics: /metrics reports each dependency up and how long
// ago the chain head was last known signed.
func TestOperationalMetrics(t *testing.T) {
	a := apptest.MustStart(t, "memory")
	resp, err := http.Get(a.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`(?m)^authzd_dependency_up\{dependency="postgres"\} 1$`,
		`(?m)^authzd_dependency_up\{dependency="spicedb"\} 1$`,
		`(?m)^authzd_audit_checkpoint_age_seconds [0-9.e+-]+$`,
		`(?m)^authzd_audit_signing_key_retired 0$`,
	} {
		if !regexp.MustCompile(want).Match(b) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

package client

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	p := retryPolicy{maxAttempts: 10, min: 100 * time.Millisecond, max: time.Second}
	for n, ceil := range map[int]time.Duration{
		1:  100 * time.Millisecond,
		2:  200 * time.Millisecond,
		3:  400 * time.Millisecond,
		4:  800 * time.Millisecond,
		5:  time.Second,
		40: time.Second, // the shift would overflow
	} {
		var most time.Duration
		for range 2000 {
			d := p.backoff(n)
			if d < 0 || d > ceil {
				t.Fatalf("backoff(%d) = %v, want within [0, %v]", n, d, ceil)
			}
			most = max(most, d)
		}
		// Full jitter spreads over the whole range; 2000 draws reach its top half.
		if most < ceil/2 {
			t.Errorf("backoff(%d): largest of 2000 draws is %v, want over %v", n, most, ceil/2)
		}
	}
	if got := (retryPolicy{maxAttempts: 3}).backoff(2); got != 0 {
		t.Errorf("zero policy backoff = %v, want 0", got)
	}
}

func TestRetryAfter(t *testing.T) {
	for h, want := range map[string]time.Duration{
		"":                              0,
		"2":                             2 * time.Second,
		"-1":                            0,
		"3600":                          maxRetryAfter,
		"Wed, 21 Oct 2015 07:28:00 GMT": 0,
	} {
		if got := retryAfter(h); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", h, got, want)
		}
	}
}

func TestBuildPath(t *testing.T) {
	tests := []struct {
		name    string
		tmpl    string
		args    []string
		want    string
		wantErr string
	}{
		{"OK", "/v1/tenants/{tenant_id}/roles/{role_id}", []string{"t1", "r1"}, "/v1/tenants/t1/roles/r1", ""},
		{"ServiceAccount", "/v1/platform/super_admins/{user_id}", []string{"sa:ci-bot"}, "/v1/platform/super_admins/sa:ci-bot", ""},
		{"Escaped", "/v1/tenants/{tenant_id}", []string{"a|b/c d"}, "/v1/tenants/a%7Cb%2Fc%20d", ""},
		{"ErrEmpty", "/v1/tenants/{tenant_id}/roles/{role_id}", []string{"t1", ""}, "", "authzd client: role_id is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := buildPath(tt.tmpl, tt.args...)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

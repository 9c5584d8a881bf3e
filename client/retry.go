package client

import (
	"math/rand/v2"
	"strconv"
	"time"
)

// retryPolicy is exponential backoff with full jitter: the n-th retry waits a random
// duration in [0, min(max, min*2^(n-1))], which spreads the retries of many clients
// after a shared failure.
type retryPolicy struct {
	maxAttempts int
	min, max    time.Duration
}

// backoff returns the wait before retry number n (1-based).
func (p retryPolicy) backoff(n int) time.Duration {
	if p.min <= 0 {
		return 0
	}
	ceil := p.max
	if n-1 < 32 {
		if d := p.min << (n - 1); d > 0 && d < ceil {
			ceil = d
		}
	}
	return rand.N(ceil + 1)
}

// maxRetryAfter caps a server's Retry-After so that a misconfigured proxy cannot stall a
// caller; the call's deadline applies as well.
const maxRetryAfter = 30 * time.Second

// retryAfter reads a Retry-After header given in seconds. HTTP dates are rare from
// authzd's proxies and are ignored.
func retryAfter(h string) time.Duration {
	s, err := strconv.Atoi(h)
	if err != nil || s <= 0 {
		return 0
	}
	return min(time.Duration(s)*time.Second, maxRetryAfter)
}

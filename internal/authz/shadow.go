package authz

import "time"

// Shadow mode: a caller moving onto authzd sends its legacy system's answer
// with each check (legacy_allowed); authzd answers as always and records in
// the check's audit row whether the two agreed.

// Audit details keys of a shadowed check.
const (
	DetailLegacyAllowed = "legacy_allowed"
	DetailShadowAgreed  = "shadow_agreed"
)

// ShadowQuery selects the shadowed checks a report covers.
type ShadowQuery struct {
	Since, Until time.Time // Until is exclusive
	TenantID     string    // empty: every tenant
	// Limit bounds the disagreement groups listed.
	Limit int
}

// ShadowGroup is every shadowed check of one tenant and key on which the
// legacy answer was LegacyAllowed and authzd's Allowed.
type ShadowGroup struct {
	TenantID      string    `json:"tenant_id"`
	Permission    string    `json:"permission"`
	LegacyAllowed bool      `json:"legacy_allowed"`
	Allowed       bool      `json:"allowed"`
	Count         int       `json:"count"`
	FirstAt       time.Time `json:"first_at"`
	LastAt        time.Time `json:"last_at"`
	// Examples are decision ids of the group's latest checks.
	Examples []string `json:"examples"`
}

// ShadowReport counts shadowed checks and lists where they disagreed,
// largest group first.
type ShadowReport struct {
	Checks        int           `json:"checks"`
	Agreed        int           `json:"agreed"`
	Disagreements []ShadowGroup `json:"disagreements"`
}

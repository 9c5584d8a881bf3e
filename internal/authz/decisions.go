package authz

import "time"

// DecisionGroup is one distinct question of the decision log in a window:
// who asked about which key on which resource, how often, and when last.
type DecisionGroup struct {
	ActorUserID  string
	Permission   string
	ResourceType string // empty for a tenant-wide key
	ResourceID   string
	Count        int64
	Last         time.Time
}

package postgres

// InFlight is how many batches the log has sent and not yet seen answered.
func InFlight(a *AuditLog) int64 { return a.inflight.Load() }

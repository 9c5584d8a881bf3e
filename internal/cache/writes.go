package cache

import "time"

// hasDelivered reports whether the stream has delivered the write of token.
func (c *decisionCache) hasDelivered(token string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.ready && c.delivered[token]
}

// pendingIDs lists the writes still waiting for the stream.
func (c *decisionCache) pendingIDs() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	ids := make([]string, 0, len(c.pending))
	for id := range c.pending {
		ids = append(ids, id)
	}
	return ids
}

func (c *decisionCache) deliveredLocked(token string) {
	if len(c.delivered) >= maxTrackedWrites {
		clear(c.delivered)
	}
	c.delivered[token] = true
}

// wrote records the zed token of one of authzd's writes, tagged with id in its
// transaction metadata, so that the stream's delivery of id marks the token.
func (c *decisionCache) wrote(id, token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.early[id] {
		delete(c.early, id)
		c.deliveredLocked(token)
		if c.observeLag != nil {
			c.observeLag(0)
		}
		return
	}
	if len(c.pending) >= maxTrackedWrites {
		clear(c.pending)
	}
	c.pending[id] = pendingWrite{token: token, at: time.Now()}
}

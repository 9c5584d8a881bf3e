package spicedb

import (
	"context"
	"sync"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/scailabs/authzd/internal/authz"
)

// maxCoalesced bounds the items of one coalesced CheckBulkPermissions call.
const maxCoalesced = 100

// coalescer turns concurrent single checks into fewer SpiceDB calls. At most
// `slots` calls are in flight; a check that arrives while all of them are busy
// waits in the queue, and the next free slot sends everything queued as one
// CheckBulkPermissions. An idle service therefore adds no latency (a lone
// check takes a free slot at once and goes out as a plain CheckPermission),
// while a busy one pays SpiceDB's per-request cost (gRPC, middleware,
// validation, revision selection) once per batch instead of once per check.
//
// Only checks of the same consistency are coalesced: minimize_latency checks
// (they all read the same quantized revision) and decision cache fills (at
// the same barrier); a batch drained from the queue is split
// by that, so answering them together changes nothing about what each one
// sees. Checks carrying a caller's zed token go to SpiceDB on their own.
type coalescer struct {
	g     *Graph
	queue chan *queuedCheck
	stop  chan struct{}
	wg    sync.WaitGroup
	// observe, when set, is told the size of every call.
	observe func(items int)
}

type queuedCheck struct {
	item *v1.CheckBulkPermissionsRequestItem
	at   string           // "" for minimize_latency, else exactly at this barrier (atBarrier)
	done chan checkResult // buffered: the slot never blocks on a caller that gave up
}

type checkResult struct {
	d   authz.Decision
	err error
}

func newCoalescer(g *Graph, slots int, observe func(int)) *coalescer {
	c := &coalescer{g: g, queue: make(chan *queuedCheck, 4*maxCoalesced), stop: make(chan struct{}), observe: observe}
	for range slots {
		c.wg.Add(1)
		go c.run()
	}
	return c
}

// check queues one minimize_latency item and waits for its answer or the
// caller's context.
func (c *coalescer) check(ctx context.Context, item *v1.CheckBulkPermissionsRequestItem) (authz.Decision, error) {
	return c.checkAt(ctx, item, "")
}

// checkAt queues one item to be read at the barrier token ("" for
// minimize_latency) and waits for its answer or the caller's context.
func (c *coalescer) checkAt(ctx context.Context, item *v1.CheckBulkPermissionsRequestItem, token string) (authz.Decision, error) {
	q := &queuedCheck{item: item, at: token, done: make(chan checkResult, 1)}
	select {
	case c.queue <- q:
	case <-c.stop:
		return authz.Decision{}, authz.Errorf(authz.EUNAVAILABLE, "authzd is shutting down")
	case <-ctx.Done():
		return authz.Decision{}, authz.Wrap(authz.EUNAVAILABLE, ctx.Err(), "spicedb did not take the check in time")
	}
	select {
	case r := <-q.done:
		return r.d, r.err
	case <-ctx.Done():
		return authz.Decision{}, authz.Wrap(authz.EUNAVAILABLE, ctx.Err(), "spicedb did not answer in time")
	}
}

func (c *coalescer) close() {
	close(c.stop)
	c.wg.Wait()
	// Answer whatever is still queued: callers must never wait forever.
	for {
		select {
		case q := <-c.queue:
			q.done <- checkResult{err: authz.Errorf(authz.EUNAVAILABLE, "authzd is shutting down")}
		default:
			return
		}
	}
}

func (c *coalescer) run() {
	defer c.wg.Done()
	batch := make([]*queuedCheck, 0, maxCoalesced)
	for {
		var first *queuedCheck
		select {
		case first = <-c.queue:
		case <-c.stop:
			return
		}
		batch = append(batch[:0], first)
	gather:
		for len(batch) < maxCoalesced {
			select {
			case q := <-c.queue:
				batch = append(batch, q)
			default:
				break gather
			}
		}
		for _, group := range byRevision(batch) {
			if c.observe != nil {
				c.observe(len(group))
			}
			c.send(group)
		}
	}
}

// byRevision splits a batch into groups that read the same revision, in order
// of first appearance. Almost always there is one group.
func byRevision(batch []*queuedCheck) [][]*queuedCheck {
	if len(batch) == 1 {
		return [][]*queuedCheck{batch}
	}
	var groups [][]*queuedCheck
	index := map[string]int{}
	for _, q := range batch {
		i, ok := index[q.at]
		if !ok {
			i = len(groups)
			index[q.at] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], q)
	}
	return groups
}

// send answers a batch with one SpiceDB call. Every failure, of the call or
// of one item, reaches the callers concerned as an error: never as a yes.
func (c *coalescer) send(batch []*queuedCheck) {
	ctx, cancel := c.g.call(context.Background())
	defer cancel()
	cons := consistency("")
	if batch[0].at != "" {
		cons = atBarrier(batch[0].at)
	}
	if len(batch) == 1 {
		d, err := c.g.checkWith(ctx, batch[0].item, cons, false)
		batch[0].done <- checkResult{d: d, err: err}
		return
	}
	items := make([]*v1.CheckBulkPermissionsRequestItem, len(batch))
	for i, q := range batch {
		items[i] = q.item
	}
	resp, err := c.g.perms.CheckBulkPermissions(ctx, &v1.CheckBulkPermissionsRequest{Consistency: cons, Items: items})
	var ds []authz.Decision
	if err == nil {
		ds, err = bulkDecisions(resp, items)
	} else {
		err = mapCheckError(err, false)
	}
	for i, q := range batch {
		if err != nil {
			q.done <- checkResult{err: err}
			continue
		}
		q.done <- checkResult{d: ds[i], err: ds[i].Err}
	}
}

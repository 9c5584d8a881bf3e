package spicedb

import (
	"context"
	"errors"
	"io"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/scailabs/authzd/internal/authz"
)

// Snapshot reads SpiceDB's relationships at one revision, and writes
// nothing (no barrier either): the what-if's copy is read through it.
type Snapshot struct {
	g  *Graph
	at string
}

// OpenSnapshot picks the revision to read at: that of a read of probe at
// least as fresh as token, or fully consistent without one. When that read
// finds nothing (so it names no revision), SpiceDB's head revision, which is
// as fresh, is taken instead.
func (g *Graph) OpenSnapshot(ctx context.Context, token string, probe *v1.RelationshipFilter) (*Snapshot, error) {
	cons := &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}}
	if token != "" {
		cons = consistency(token)
	}
	cctx, cancel := g.call(ctx)
	defer cancel()
	stream, err := g.perms.ReadRelationships(cctx, &v1.ReadRelationshipsRequest{Consistency: cons, RelationshipFilter: probe, OptionalLimit: 1})
	if err != nil {
		return nil, mapCheckError(err, token != "")
	}
	resp, err := stream.Recv()
	switch {
	case errors.Is(err, io.EOF):
		at, err := g.HeadRevision(ctx)
		if err != nil {
			return nil, err
		}
		return &Snapshot{g: g, at: at}, nil
	case err != nil:
		return nil, mapCheckError(err, token != "")
	}
	if resp.GetReadAt().GetToken() == "" {
		return nil, authz.Errorf(authz.EUNAVAILABLE, "spicedb gave no revision")
	}
	return &Snapshot{g: g, at: resp.GetReadAt().GetToken()}, nil
}

// At is the zed token of the snapshot's revision.
func (s *Snapshot) At() string { return s.at }

// Read returns the relationships matching f at exactly the snapshot's revision.
func (s *Snapshot) Read(ctx context.Context, f *v1.RelationshipFilter) ([]*v1.Relationship, error) {
	return s.g.readAt(ctx, atBarrier(s.at), f, 0)
}

// Schema returns SpiceDB's schema text (as of now: a schema change since
// the revision is not undone).
func (s *Snapshot) Schema(ctx context.Context) (string, error) {
	cctx, cancel := s.g.call(ctx)
	defer cancel()
	resp, err := s.g.schema.ReadSchema(cctx, &v1.ReadSchemaRequest{})
	if err != nil {
		return "", mapError(err, "read schema")
	}
	return resp.GetSchemaText(), nil
}

// Target resolves a check to the object type, object id and permission
// SpiceDB evaluates, as Check does; an error is a check Check would refuse.
func (g *Graph) Target(c authz.Check) (resType, resID, perm string, err error) {
	obj, perm, err := g.target(c)
	if err != nil {
		return "", "", "", err
	}
	return obj.GetObjectType(), obj.GetObjectId(), perm, nil
}

// Package auditchain holds the audit log's hash chain: the canonical form of
// a row, the link hash, the signed checkpoints and the verifier. The writer
// (internal/postgres) and both verifiers (`authzd audit verify`, `authzctl
// audit verify`) use it, so there is one definition of what a row hashes to.
// docs/audit.md specifies the same rules for verifiers in other languages.
package auditchain

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"strconv"
	"time"
)

// HashSize is the size of a link hash (SHA-256).
const HashSize = sha256.Size

// Genesis is the hash before the first row of a chain: 32 zero bytes.
var Genesis = make([]byte, HashSize)

// TimeLayout is how occurred_at is written in the canonical form: UTC, always
// six fractional digits (Postgres keeps microseconds).
const TimeLayout = "2006-01-02T15:04:05.000000Z"

// Row is one audit row as the chain sees it: every stored field, with
// Details holding the exact stored JSON text (nil for SQL NULL).
// Kept apart from authz.Event, whose fields look alike: that one is the
// decoded event authzd records (Details a map, no Seq or Hash); this one holds
// the bytes the chain hashes, which re-encoding a map would not reproduce.
type Row struct {
	ID           int64
	Seq          int64
	Hash         []byte
	OccurredAt   time.Time
	Module       string
	Action       string
	ActorUserID  string
	TenantID     string
	ResourceType string
	ResourceID   string
	Permission   string
	Decision     string
	ZedToken     string
	DecisionID   string
	Client       string
	RequestID    string
	Details      []byte
}

// Canonical is the byte string a row's link hashes: its fields in a fixed
// order, each as a 4-byte big-endian length followed by its UTF-8 bytes. The
// sequence number is decimal; occurred_at is TimeLayout; a NULL details is a
// zero-length field (stored details are JSON, never empty).
func (r Row) Canonical() []byte {
	fields := [...]string{strconv.FormatInt(r.Seq, 10), r.OccurredAt.UTC().Format(TimeLayout), r.Module, r.Action,
		r.ActorUserID, r.TenantID, r.ResourceType, r.ResourceID, r.Permission, r.Decision, r.ZedToken, r.DecisionID,
		r.Client, r.RequestID, string(r.Details)}
	n := 0
	for _, f := range fields {
		n += 4 + len(f)
	}
	b := make([]byte, 0, n)
	for _, f := range fields {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

// Link is SHA-256(prev || canonical(r)): the hash row r must carry when the
// row before it carries prev.
func Link(prev []byte, r Row) []byte { return linkCanonical(prev, r.Canonical()) }

func linkCanonical(prev, canonical []byte) []byte {
	h := sha256.New()
	h.Write(prev)
	h.Write(canonical)
	return h.Sum(nil)
}

// Head is a position in the chain: the last sequence number and its hash.
type Head struct {
	Seq  int64
	Hash []byte
}

// Extend gives rows the sequence numbers and hashes that follow head, in
// order, and returns the new head.
func Extend(head Head, rows []Row) Head {
	for i := range rows {
		head.Seq++
		rows[i].Seq = head.Seq
		rows[i].Hash = Link(head.Hash, rows[i])
		head.Hash = rows[i].Hash
	}
	return head
}

// Equal reports whether two heads are the same position.
func (h Head) Equal(o Head) bool { return h.Seq == o.Seq && bytes.Equal(h.Hash, o.Hash) }

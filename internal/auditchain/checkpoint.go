package auditchain

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// Checkpoint is a signed chain position: whoever holds the public key can
// tell that the chain once ended at (Seq, Hash), whatever the database says now.
type Checkpoint struct {
	Seq       int64
	Hash      []byte
	SignedAt  time.Time
	KeyID     string
	Signature []byte
}

// Message is the byte string a checkpoint signs:
// "authzd-audit-checkpoint-v1\n<seq>\n<hex hash>\n<signed_at in TimeLayout>".
func (c Checkpoint) Message() []byte {
	return []byte("authzd-audit-checkpoint-v1\n" + strconv.FormatInt(c.Seq, 10) + "\n" + hex.EncodeToString(c.Hash) +
		"\n" + c.SignedAt.UTC().Format(TimeLayout))
}

// Verify checks the signature with pub.
func (c Checkpoint) Verify(pub ed25519.PublicKey) bool {
	return len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, c.Message(), c.Signature)
}

// KeyID names a public key: the first 16 hex digits of SHA-256 of its 32 raw bytes.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// PublicKey is a key that signs checkpoints, as a deployment records it.
type PublicKey struct {
	KeyID     string
	Key       ed25519.PublicKey
	FirstSeen time.Time
}

// Signer signs checkpoints with an Ed25519 key.
type Signer struct {
	key ed25519.PrivateKey
	id  string
}

// NewSigner wraps a private key.
func NewSigner(key ed25519.PrivateKey) *Signer {
	return &Signer{key: key, id: KeyID(key.Public().(ed25519.PublicKey))}
}

// GenerateSigner makes a signer with a fresh key.
func GenerateSigner() (*Signer, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return NewSigner(key), nil
}

// KeyID is the id of the signer's public key.
func (s *Signer) KeyID() string { return s.id }

// Public is the signer's public key.
func (s *Signer) Public() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// Sign makes the checkpoint of head at time at (kept to microseconds, as stored).
func (s *Signer) Sign(head Head, at time.Time) Checkpoint {
	c := Checkpoint{Seq: head.Seq, Hash: head.Hash, SignedAt: at.UTC().Truncate(time.Microsecond), KeyID: s.id}
	c.Signature = ed25519.Sign(s.key, c.Message())
	return c
}

// MarshalPrivateKey encodes a key as PEM "PRIVATE KEY" (PKCS #8), the format
// of AUTHZ_AUDIT_SIGNING_KEY (`openssl genpkey -algorithm ed25519` writes it too).
func MarshalPrivateKey(key ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// LoadSigner reads a PEM PKCS #8 Ed25519 private key file.
func LoadSigner(path string) (*Signer, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s holds no PEM \"PRIVATE KEY\" block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s holds a %T, not an Ed25519 key", path, k)
	}
	return NewSigner(key), nil
}

// MarshalPublicKey encodes a public key as PEM "PUBLIC KEY" (PKIX).
func MarshalPublicKey(pub ed25519.PublicKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(pub) // cannot fail for an Ed25519 key
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// ParsePublicKey reads a PEM "PUBLIC KEY" (PKIX) Ed25519 key.
func ParsePublicKey(raw []byte) (ed25519.PublicKey, error) {
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, errors.New("no PEM \"PUBLIC KEY\" block")
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("a %T, not an Ed25519 key", k)
	}
	return pub, nil
}

// ReadTrusted reads PEM public key files into the set a verifier trusts.
func ReadTrusted(paths []string) (map[string]ed25519.PublicKey, error) {
	keys := map[string]ed25519.PublicKey{}
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		pub, err := ParsePublicKey(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		keys[KeyID(pub)] = pub
	}
	return keys, nil
}

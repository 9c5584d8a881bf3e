// Package tlsfiles loads TLS certificates, keys and CA bundles from files and
// reloads them when the files change, so that a rotated certificate (a
// cert-manager renewal, Kubernetes' symlink swap of a mounted Secret) is used
// without a restart. authzd's server, its SpiceDB dial, the Go client,
// authzctl and healthprobe all load their files through it.
//
// A change is noticed by reading the files and comparing their contents, at
// most once per Interval: on every handshake that needs them and, for a
// server, from Run. A change that does not load (a half-written pair, a key
// that does not match) is reported once and the files last loaded stay in use.
package tlsfiles

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Role says what a file holds, so that a caller can name its own setting
// (a variable, a flag) in an error.
type Role string

// The files a Store reads.
const (
	RoleCert Role = "certificate"
	RoleKey  Role = "key"
	RoleCA   Role = "CA"
)

// FileError is a file that could not be read or parsed.
type FileError struct {
	Role Role
	Path string
	Err  error
}

func (e *FileError) Error() string { return fmt.Sprintf("%s file %s: %v", e.Role, e.Path, e.Err) }
func (e *FileError) Unwrap() error { return e.Err }

// Files names the files of one TLS endpoint. CertFile and KeyFile go together
// (both or neither); CAFile is optional.
type Files struct {
	CertFile, KeyFile, CAFile string
}

// DefaultInterval is how often the files are read for a change.
const DefaultInterval = time.Second

// Options configure a Store.
type Options struct {
	// Interval between reads of the files (default DefaultInterval).
	Interval time.Duration
	// OnReload is called after each attempt to load changed files: err nil
	// when they were loaded (then s holds them), else why not (the previous
	// files stay in use). It is not called for the first load.
	OnReload func(s *Store, err error)
}

// loaded is one consistent set of files.
type loaded struct {
	sum  [sha256.Size]byte
	cert *tls.Certificate // nil without a pair
	leaf *x509.Certificate
	pool *x509.CertPool // nil without a CA file
	// caExpiry is the earliest NotAfter of the CA file's certificates.
	caExpiry time.Time
}

// Store holds the files' current contents.
type Store struct {
	files    Files
	opts     Options
	cur      atomic.Pointer[loaded]
	mu       sync.Mutex // one reload at a time
	next     atomic.Int64
	failed   [sha256.Size]byte // the contents last refused, reported once
	hasFails bool
}

// Load reads the files. A half pair, an unreadable file, a key that does not
// match its certificate or a CA file without certificates is an error
// (a *FileError where one file is to blame).
func Load(f Files, opts Options) (*Store, error) {
	if (f.CertFile == "") != (f.KeyFile == "") {
		if f.CertFile == "" {
			return nil, &FileError{Role: RoleCert, Err: errors.New("not set, but its key file is")}
		}
		return nil, &FileError{Role: RoleKey, Err: errors.New("not set, but its certificate file is")}
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	s := &Store{files: f, opts: opts}
	l, err := s.read()
	if err != nil {
		return nil, err
	}
	s.cur.Store(l)
	s.next.Store(time.Now().Add(opts.Interval).UnixNano())
	return s, nil
}

// read loads the files as they are now.
func (s *Store) read() (*loaded, error) {
	var raw [3][]byte
	for i, p := range []struct {
		role Role
		path string
	}{{RoleCert, s.files.CertFile}, {RoleKey, s.files.KeyFile}, {RoleCA, s.files.CAFile}} {
		if p.path == "" {
			continue
		}
		b, err := os.ReadFile(p.path)
		if err != nil {
			return nil, &FileError{Role: p.role, Path: p.path, Err: err}
		}
		raw[i] = b
	}
	h := sha256.New()
	for _, b := range raw {
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	l := &loaded{}
	copy(l.sum[:], h.Sum(nil))
	if s.files.CertFile != "" {
		cert, err := tls.X509KeyPair(raw[0], raw[1])
		if err != nil {
			return l, &FileError{Role: RoleCert, Path: s.files.CertFile, Err: fmt.Errorf("with key file %s: %w", s.files.KeyFile, err)}
		}
		l.cert, l.leaf = &cert, cert.Leaf
	}
	if s.files.CAFile != "" {
		pool, expiry, err := parseCAs(raw[2])
		if err != nil {
			return l, &FileError{Role: RoleCA, Path: s.files.CAFile, Err: err}
		}
		l.pool, l.caExpiry = pool, expiry
	}
	return l, nil
}

func parseCAs(b []byte) (*x509.CertPool, time.Time, error) {
	pool := x509.NewCertPool()
	var earliest time.Time
	n := 0
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, time.Time{}, err
		}
		pool.AddCert(c)
		if n == 0 || c.NotAfter.Before(earliest) {
			earliest = c.NotAfter
		}
		n++
	}
	if n == 0 || len(bytes.TrimSpace(b)) == 0 {
		return nil, time.Time{}, errors.New("no PEM certificate in it")
	}
	return pool, earliest, nil
}

// Check reloads the files when they changed and Interval has passed since the
// last read. It returns at once when another goroutine is reading them.
func (s *Store) Check() {
	now := time.Now()
	if now.UnixNano() < s.next.Load() || !s.mu.TryLock() {
		return
	}
	defer s.mu.Unlock()
	s.next.Store(now.Add(s.opts.Interval).UnixNano())
	s.reload()
}

// Reload reads the files now and uses them when they changed and load.
func (s *Store) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reload()
}

func (s *Store) reload() error {
	l, err := s.read()
	if l != nil && l.sum == s.cur.Load().sum {
		return nil // unchanged
	}
	if err != nil {
		// Report each refused content once: a file that stays broken (or
		// unreadable) is not counted every Interval.
		var sum [sha256.Size]byte
		if l != nil {
			sum = l.sum
		}
		if s.hasFails && sum == s.failed {
			return err
		}
		s.failed, s.hasFails = sum, true
		if s.opts.OnReload != nil {
			s.opts.OnReload(s, err)
		}
		return err
	}
	s.hasFails = false
	s.cur.Store(l)
	if s.opts.OnReload != nil {
		s.opts.OnReload(s, nil)
	}
	return nil
}

// Run checks the files every Interval until ctx ends, so that a server
// notices a change (and reports it) without waiting for a handshake.
func (s *Store) Run(ctx context.Context) {
	t := time.NewTicker(s.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Check()
		}
	}
}

// Files names the files the store reads.
func (s *Store) Files() Files { return s.files }

// Leaf is the current certificate, nil without a pair.
func (s *Store) Leaf() *x509.Certificate { return s.cur.Load().leaf }

// CAExpiry is the earliest expiry of the current CA file's certificates
// (zero without a CA file).
func (s *Store) CAExpiry() time.Time { return s.cur.Load().caExpiry }

// ServerConfig is a server's TLS configuration: the current pair on every
// handshake and, with a CA file, a client certificate signed by one of its
// CAs required (mutual TLS).
func (s *Store) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			s.Check()
			l := s.cur.Load()
			c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*l.cert}}
			if l.pool != nil {
				c.ClientAuth, c.ClientCAs = tls.RequireAndVerifyClientCert, l.pool
			}
			return c, nil
		},
	}
}

// ClientConfig is a client's TLS configuration as of now for serverName: the
// CA file's certificates as roots (the system's without one) and the pair, if
// any, as the client certificate. Make one per connection (DialTLSContext) so
// that a reloaded CA is used.
func (s *Store) ClientConfig(serverName string) *tls.Config {
	s.Check()
	l := s.cur.Load()
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName, RootCAs: l.pool}
	if l.cert != nil {
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			s.Check()
			return s.cur.Load().cert, nil
		}
	}
	return c
}

// DialTLSContext dials addr and completes a TLS handshake with the current
// files, verifying the server as serverName (the host of addr when empty).
// It fits http.Transport.DialTLSContext.
func (s *Store) DialTLSContext(serverName string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		name := serverName
		if name == "" {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			name = host
		}
		d := tls.Dialer{Config: s.ClientConfig(name)}
		return d.DialContext(ctx, network, addr)
	}
}

// Refused reports whether err is a TLS handshake that failed because of the
// certificates, and whose: RoleCA when this side did not trust the peer's
// certificate (the CA file, or the server name, is wrong), RoleCert when the
// peer refused this side's certificate or its absence.
func Refused(err error) (Role, bool) {
	var verify *tls.CertificateVerificationError
	if errors.As(err, &verify) {
		return RoleCA, true
	}
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	if errors.As(err, &unknown) || errors.As(err, &host) || errors.As(err, &invalid) {
		return RoleCA, true
	}
	// The peer's alert arrives as a net.OpError whose Op is "remote error";
	// under TLS 1.3 a client learns its certificate was refused only then.
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" {
		return RoleCert, true
	}
	return "", false
}

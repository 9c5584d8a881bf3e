package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/scailabs/authzd/cmd/authzd/app"
	"github.com/scailabs/authzd/internal/auditchain"
)

// errBroken makes `authzd audit verify` exit non-zero after printing the problem.
var errBroken = errors.New("the audit chain is broken")

type files []string

func (f *files) String() string     { return strings.Join(*f, ",") }
func (f *files) Set(v string) error { *f = append(*f, v); return nil }

func audit(ctx context.Context, cfg app.Config, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("audit: want verify, keygen or rotate-key\n%s", usage)
	}
	switch args[0] {
	case "keygen":
		fs := flag.NewFlagSet("audit keygen", flag.ContinueOnError)
		out := fs.String("out", "", "write the private key (PEM PKCS #8) to this new file; the public key goes to stdout")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *out == "" {
			return fmt.Errorf("audit keygen: --out is required")
		}
		pub, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		pemKey, err := auditchain.MarshalPrivateKey(key)
		if err != nil {
			return err
		}
		if err := os.WriteFile(*out, pemKey, 0o600); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "# key_id %s; give this public key to whoever verifies the audit chain\n%s", auditchain.KeyID(pub), auditchain.MarshalPublicKey(pub))
		return nil
	case "rotate-key":
		fs := flag.NewFlagSet("audit rotate-key", flag.ContinueOnError)
		newKey := fs.String("new-key", "", "PEM PKCS #8 Ed25519 key (authzd audit keygen) that signs checkpoints from the rotation on")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *newKey == "" {
			return fmt.Errorf("audit rotate-key: --new-key is required")
		}
		rot, err := app.RotateAuditKey(ctx, cfg, *newKey)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "rotated at sequence %d: key %s is retired, key %s signs from now on\n", rot.Seq, rot.OldKeyID, rot.NewKeyID)
		fmt.Fprintln(stdout, "restart every replica with AUTHZ_AUDIT_SIGNING_KEY set to the new key; until then they sign no checkpoints")
		return nil
	case "verify":
		fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
		since := fs.String("since", "", "verify from the first row at or after this date or RFC 3339 time, trusting the row before it")
		var keys files
		fs.Var(&keys, "public-key", "PEM public key file trusted for checkpoints (repeatable); without it, the keys recorded in the database are used, with a warning")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		var from time.Time
		if *since != "" {
			var err error
			if from, err = parseSince(*since); err != nil {
				return err
			}
		}
		db, err := app.OpenStore(ctx, cfg)
		if err != nil {
			return err
		}
		defer db.Close()
		trusted, err := auditchain.ReadTrusted(keys)
		if err != nil {
			return fmt.Errorf("--public-key: %w", err)
		}
		if len(keys) == 0 {
			recorded, err := db.SigningKeys(ctx)
			if err != nil {
				return err
			}
			for _, k := range recorded {
				trusted[k.KeyID] = k.Key
			}
			fmt.Fprintln(stderr, "warning: no --public-key given: checkpoints are checked against the keys recorded in the same database, which catches edits but not a rewrite by someone who can also add a key")
		}
		report, problem, err := auditchain.Walk(ctx, db, from, trusted)
		if err != nil {
			return err
		}
		if problem != nil {
			fmt.Fprintln(stdout, "BROKEN:", problem.Error())
			fmt.Fprintln(stdout, "verified before the break:", report)
			return errBroken
		}
		fmt.Fprintln(stdout, "OK:", report)
		return nil
	default:
		return fmt.Errorf("audit: unknown command %q\n%s", args[0], usage)
	}
}

func parseSince(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--since %q is neither a date (2026-05-01) nor an RFC 3339 time", v)
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/scailabs/authzd/client"
	"github.com/scailabs/authzd/client/tlsfiles"
)

// Exit statuses.
const (
	exitOK     = 0 // done; for check: allowed
	exitDenied = 1 // check: denied
	exitUsage  = 2 // the command line is wrong
	exitError  = 3 // anything else: authzd refused, could not be reached, ...
)

const exitHelp = `Exit status: 0 done (check: allowed), 1 denied (check only), 2 usage error,
3 any other error (authzd refused the request or could not be reached).`

// errDenied makes check exit with exitDenied.
var errDenied = errors.New("denied")

// usageError is a mistake on the command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// env is what every command shares: the output streams and the global flags.
type env struct {
	stdout, stderr io.Writer
	url, token     string
	actor          string
	timeout        time.Duration
	json           bool
	// TLS files: the CA that signs authzd's certificate and the client certificate of mutual TLS.
	caFile, clientCert, clientKey string
}

// globalFlags are accepted before the command and by every command.
var globalFlags = []string{"url", "token", "as", "timeout", "json", "ca-file", "client-cert", "client-key"}

func (e *env) addGlobalFlags(fs *flag.FlagSet) {
	// The current values are the defaults, so that flags given before the command
	// survive the command's own parse.
	fs.StringVar(&e.url, "url", e.url, "authzd base URL; overrides $AUTHZ_URL")
	fs.StringVar(&e.token, "token", e.token, "API token; overrides $AUTHZ_TOKEN")
	fs.StringVar(&e.actor, "as", e.actor, "user id recorded as the actor of provisioning writes; overrides $AUTHZ_ACTOR")
	fs.DurationVar(&e.timeout, "timeout", e.timeout, "bound on each request to authzd, retries included")
	fs.BoolVar(&e.json, "json", e.json, "print JSON instead of text")
	fs.StringVar(&e.caFile, "ca-file", e.caFile, "PEM file of the CA that signs authzd's certificate (default: the system's); overrides $AUTHZ_CA_FILE")
	fs.StringVar(&e.clientCert, "client-cert", e.clientCert, "PEM client certificate for mutual TLS; overrides $AUTHZ_CLIENT_CERT_FILE")
	fs.StringVar(&e.clientKey, "client-key", e.clientKey, "PEM key of --client-cert; overrides $AUTHZ_CLIENT_KEY_FILE")
}

func (e *env) client() (*client.Client, error) {
	if e.url == "" {
		return nil, usagef("no authzd URL: set AUTHZ_URL or pass --url")
	}
	if e.token == "" {
		return nil, usagef("no API token: set AUTHZ_TOKEN or pass --token")
	}
	opts := []client.Option{client.WithTimeout(e.timeout)}
	if e.actor != "" {
		opts = append(opts, client.WithActor(e.actor))
	}
	if e.caFile != "" || e.clientCert != "" || e.clientKey != "" {
		if _, err := tlsfiles.Load(e.tlsFiles(), tlsfiles.Options{}); err != nil {
			return nil, usagef("%s: %v", tlsFlag(err), err)
		}
		opts = append(opts, client.WithTLSFiles(e.caFile, e.clientCert, e.clientKey))
	}
	c, err := client.New(e.url, e.token, opts...)
	if err != nil {
		return nil, usagef("%v", err)
	}
	return c, nil
}

// command is a group of subcommands or a leaf that runs.
type command struct {
	name    string
	args    string // positional arguments, for the usage line
	summary string // one line
	help    string // more, for --help
	nargs   int    // exact number of positional arguments of a leaf
	flags   func(fs *flag.FlagSet)
	run     func(ctx context.Context, e *env, c *client.Client, args []string) error
	// subs are the commands of a group; a leaf (run set) may have some too,
	// chosen by its first argument ("audit" and "audit verify").
	subs []*command
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	e := &env{
		stdout: stdout, stderr: stderr,
		url: getenv("AUTHZ_URL"), token: getenv("AUTHZ_TOKEN"), actor: getenv("AUTHZ_ACTOR"),
		caFile: getenv("AUTHZ_CA_FILE"), clientCert: getenv("AUTHZ_CLIENT_CERT_FILE"), clientKey: getenv("AUTHZ_CLIENT_KEY_FILE"),
		timeout: 30 * time.Second,
	}
	return root().execute(ctx, e, nil, args)
}

func (cmd *command) execute(ctx context.Context, e *env, parents []string, args []string) int {
	path := append(slices.Clone(parents), cmd.name)
	if cmd.run != nil && len(args) > 0 {
		for _, sub := range cmd.subs {
			if sub.name == args[0] {
				return sub.execute(ctx, e, path, args[1:])
			}
		}
	}
	fs := flag.NewFlagSet(strings.Join(path, " "), flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if len(parents) == 0 || cmd.run != nil {
		e.addGlobalFlags(fs)
	}
	if cmd.flags != nil {
		cmd.flags(fs)
	}

	if cmd.run == nil {
		if err := fs.Parse(args); err != nil {
			return cmd.parseFailed(e, path, fs, err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			cmd.usage(e.stderr, path, fs)
			return exitUsage
		}
		if rest[0] == "help" {
			// "authzctl help tenant put" is "authzctl tenant put --help".
			return cmd.execute(ctx, e, parents, append(rest[1:], "--help"))
		}
		for _, sub := range cmd.subs {
			if sub.name == rest[0] {
				return sub.execute(ctx, e, path, rest[1:])
			}
		}
		fmt.Fprintf(e.stderr, "%s: unknown command %q\n\n", strings.Join(path, " "), rest[0])
		cmd.usage(e.stderr, path, fs)
		return exitUsage
	}

	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return cmd.parseFailed(e, path, fs, err)
	}
	if len(pos) != cmd.nargs {
		fmt.Fprintf(e.stderr, "%s: want %d argument(s), got %d\n\n", strings.Join(path, " "), cmd.nargs, len(pos))
		cmd.usage(e.stderr, path, fs)
		return exitUsage
	}
	c, err := e.client()
	if err == nil {
		err = cmd.run(ctx, e, c, pos)
	}
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errDenied):
		return exitDenied
	case errors.As(err, &ue):
		fmt.Fprintf(e.stderr, "%s: %v\n", strings.Join(path, " "), err)
		return exitUsage
	default:
		if role, ok := tlsfiles.Refused(err); ok {
			fmt.Fprintf(e.stderr, "authzctl: %s\n", refusal(role))
		}
		fmt.Fprintf(e.stderr, "authzctl: %v\n", err)
		return exitError
	}
}

func (cmd *command) parseFailed(e *env, path []string, fs *flag.FlagSet, err error) int {
	if errors.Is(err, flag.ErrHelp) {
		cmd.usage(e.stdout, path, fs)
		return exitOK
	}
	fmt.Fprintf(e.stderr, "%s: %v\n\n", strings.Join(path, " "), err)
	cmd.usage(e.stderr, path, fs)
	return exitUsage
}

// parseInterspersed parses flags that come before, between or after positional
// arguments, and returns the positional ones. "--" ends the flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func (cmd *command) usage(w io.Writer, path []string, fs *flag.FlagSet) {
	name := strings.Join(path, " ")
	if cmd.run == nil {
		fmt.Fprintf(w, "Usage: %s <command> [flags] [arguments]\n\n", name)
	} else {
		fmt.Fprintf(w, "Usage: %s %s\n\n", name, strings.TrimSpace(cmd.args+" [flags]"))
	}
	fmt.Fprintln(w, cmd.summary)
	if cmd.help != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(cmd.help))
	}
	if cmd.subs != nil {
		fmt.Fprintln(w, "\nCommands:")
		for _, sub := range cmd.subs {
			fmt.Fprintf(w, "  %-12s %s\n", sub.name, sub.summary)
		}
		fmt.Fprintf(w, "\nRun '%s <command> --help' for the command's arguments and flags.\n", name)
	}
	var own, global []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		if slices.Contains(globalFlags, f.Name) {
			global = append(global, f)
		} else {
			own = append(own, f)
		}
	})
	printFlags(w, "Flags", own)
	printFlags(w, "Global flags", global)
	fmt.Fprintf(w, "\n%s\n", exitHelp)
}

func printFlags(w io.Writer, title string, flags []*flag.Flag) {
	if len(flags) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s:\n", title)
	for _, f := range flags {
		name, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		fmt.Fprintf(w, "%-28s %s", line, usage)
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "[]" && !sensitive(f.Name) {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	}
}

// sensitive flags never show their current value in help; the others that come from
// the environment would only repeat it.
func sensitive(name string) bool {
	return name == "token" || name == "url" || name == "as" || name == "ca-file" || name == "client-cert" || name == "client-key"
}

// stringList is a flag that may be repeated and takes comma-separated values.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

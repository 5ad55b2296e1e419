package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ringkv/ringkv/client"
)

// authOptions are the client options --user and --token ask for. A --user
// without ":PASSWORD" prompts for the password (see readPassword).
func (a *app) authOptions() ([]client.Option, error) {
	if a.user == "" && a.token == "" {
		return nil, nil
	}
	if a.user != "" && a.token != "" {
		return nil, errors.New("--user and --token exclude each other")
	}
	if !a.tls.Enabled() {
		return nil, errors.New("--user and --token need TLS (--cacert): credentials are never sent in the clear")
	}
	if a.token != "" {
		return []client.Option{client.WithToken(a.token)}, nil
	}
	name, password, ok := strings.Cut(a.user, ":")
	if !ok {
		var err error
		if password, err = readPassword(a.stdin, a.stderr, "Password: "); err != nil {
			return nil, err
		}
	}
	return []client.Option{client.WithCredentials(name, password)}, nil
}

// readPassword reads a password: from the terminal without echo when in is
// one, with prompt on errOut; else one line of in, so that scripts can pipe
// it. It reads in a byte at a time, leaving the rest of in to the command.
func readPassword(in io.Reader, errOut io.Writer, prompt string) (string, error) {
	if in == nil {
		in = os.Stdin
	}
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(errOut, prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(errOut)
		if err != nil {
			return "", fmt.Errorf("reading the password: %w", err)
		}
		return string(b), nil
	}
	var line []byte
	buf := make([]byte, 1)
	for {
		n, err := in.Read(buf)
		if n == 1 {
			if buf[0] == '\n' {
				break
			}
			line = append(line, buf[0])
			continue
		}
		if errors.Is(err, io.EOF) {
			if len(line) == 0 {
				return "", errors.New("reading the password: stdin is empty (pass NAME:PASSWORD, or the password on a line of stdin)")
			}
			break
		}
		if err != nil {
			return "", fmt.Errorf("reading the password: %w", err)
		}
	}
	return strings.TrimSuffix(string(line), "\r"), nil
}

// stdinIsTerminal reports whether in is a terminal.
func stdinIsTerminal(in io.Reader) bool {
	f, ok := in.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// changed prints what a change did: msg, or with -o json {"epoch":N}.
func (a *app) changed(cmd *cobra.Command, epoch uint64, msg string) error {
	if a.output == outputJSON {
		return writeJSON(cmd.OutOrStdout(), map[string]uint64{"epoch": epoch})
	}
	_, err := fmt.Fprintln(cmd.OutOrStdout(), msg)
	return err
}

// change runs one auth change with a client and prints msg.
func (a *app) change(cmd *cobra.Command, msg string, f func(ctx context.Context, c *client.Client) (uint64, error)) error {
	return a.withClient(cmd, func(ctx context.Context, c *client.Client) error {
		epoch, err := f(ctx, c)
		if err != nil {
			return err
		}
		return a.changed(cmd, epoch, msg)
	})
}

func newAuthCommand(a *app) *cobra.Command {
	auth := &cobra.Command{
		Use:   "auth",
		Short: "Turn authentication on or off, or show it",
		Long: "Authentication is off by default: every call is open. Enabled, every call needs\n" +
			"credentials (--user NAME[:PASSWORD] or --token TOKEN, over TLS), and users may do\n" +
			"what their roles grant. auth enable is refused unless user root exists with role\n" +
			"root, and on a cluster that runs without TLS. See docs/security.md.",
	}
	auth.AddCommand(
		&cobra.Command{
			Use:   "enable",
			Short: "Turn authentication on",
			Example: "  kvctl user add root\n  kvctl role add root\n  kvctl user grant-role root root\n" +
				"  kvctl auth enable\n  kvctl --user root auth status",
			Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return a.change(cmd, "Authentication Enabled", func(ctx context.Context, c *client.Client) (uint64, error) {
					return c.AuthEnable(ctx)
				})
			},
		},
		&cobra.Command{
			Use:   "disable",
			Short: "Turn authentication off (root only): every call is then open",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return a.change(cmd, "Authentication Disabled", func(ctx context.Context, c *client.Client) (uint64, error) {
					return c.AuthDisable(ctx)
				})
			},
		},
		&cobra.Command{
			Use:   "status",
			Short: "Show whether authentication is on, and who you are",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return a.withClient(cmd, func(ctx context.Context, c *client.Client) error {
					st, err := c.AuthStatus(ctx)
					if err != nil {
						return err
					}
					if a.output == outputJSON {
						return writeJSON(cmd.OutOrStdout(), struct {
							Enabled bool     `json:"enabled"`
							User    string   `json:"user"`
							Roles   []string `json:"roles"`
						}{st.Enabled, st.User, append([]string{}, st.Roles...)})
					}
					w := cmd.OutOrStdout()
					fmt.Fprintf(w, "Authentication Status: %v\n", st.Enabled)
					if st.User != "" {
						fmt.Fprintf(w, "User: %s\nRoles: %s\n", st.User, strings.Join(st.Roles, ","))
					}
					return nil
				})
			},
		},
	)
	return auth
}

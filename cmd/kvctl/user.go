package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ringkv/ringkv/client"
)

func newUserCommand(a *app) *cobra.Command {
	user := &cobra.Command{
		Use:   "user",
		Short: "Manage users (root only while auth is enabled)",
	}
	user.AddCommand(newUserAddCommand(a), newUserDeleteCommand(a), newUserListCommand(a),
		newUserRoleCommand(a, "grant-role", "Give a user a role", "Role %s is granted to user %s",
			(*client.Client).UserGrantRole),
		newUserRoleCommand(a, "revoke-role", "Take a role from a user", "Role %s is revoked from user %s",
			(*client.Client).UserRevokeRole),
	)
	return user
}

func newUserAddCommand(a *app) *cobra.Command {
	var newToken bool
	cmd := &cobra.Command{
		Use:   "add NAME[:PASSWORD]",
		Short: "Add a user",
		Long: "Add a user that authenticates with a password, a static token, or either.\n\n" +
			"Without \":PASSWORD\" kvctl asks for the password: twice without echo on a\n" +
			"terminal, else it reads one line of stdin. With --new-token kvctl makes a\n" +
			"random token, prints it once, and asks for no password unless one is given.\n" +
			"The node hashes both (bcrypt, SHA-256); neither is stored in the clear.",
		Example: "  kvctl user add root\n" +
			"  echo \"$PW\" | kvctl user add alice\n" +
			"  kvctl --user root user add ci --new-token",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, password, hasPassword := strings.Cut(args[0], ":")
			if !hasPassword && !newToken {
				var err error
				if password, err = readPassword(cmd.InOrStdin(), cmd.ErrOrStderr(), "Password of "+name+": "); err != nil {
					return err
				}
				if stdinIsTerminal(cmd.InOrStdin()) {
					again, err := readPassword(cmd.InOrStdin(), cmd.ErrOrStderr(), "Type password of "+name+" again for confirmation: ")
					if err != nil {
						return err
					}
					if again != password {
						return errors.New("the passwords differ")
					}
				}
			}
			var token string
			if newToken {
				b := make([]byte, 24)
				if _, err := rand.Read(b); err != nil {
					return fmt.Errorf("making a token: %w", err)
				}
				token = hex.EncodeToString(b)
			}
			return a.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				epoch, err := c.UserAdd(ctx, name, password, token)
				if err != nil {
					return err
				}
				if a.output == outputJSON {
					return writeJSON(cmd.OutOrStdout(), struct {
						Epoch uint64 `json:"epoch"`
						Token string `json:"token,omitempty"`
					}{epoch, token})
				}
				fmt.Fprintf(cmd.OutOrStdout(), "User %s created\n", name)
				if token != "" {
					fmt.Fprintf(cmd.OutOrStdout(), "Token: %s\n", token)
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&newToken, "new-token", false, "make a random static token for the user and print it")
	return cmd
}

func newUserDeleteCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a user (root: only while auth is disabled)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.change(cmd, "User "+args[0]+" deleted", func(ctx context.Context, c *client.Client) (uint64, error) {
				return c.UserDelete(ctx, args[0])
			})
		},
	}
}

func newUserRoleCommand(a *app, use, short, msg string, f func(*client.Client, context.Context, string, string) (uint64, error)) *cobra.Command {
	return &cobra.Command{
		Use:   use + " USER ROLE",
		Short: short,
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.change(cmd, fmt.Sprintf(msg, args[1], args[0]), func(ctx context.Context, c *client.Client) (uint64, error) {
				return f(c, ctx, args[0], args[1])
			})
		},
	}
}

func newUserListCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the users, their roles and how they authenticate",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				users, err := c.UserList(ctx)
				if err != nil {
					return err
				}
				type userJSON struct {
					Name        string   `json:"name"`
					Roles       []string `json:"roles"`
					HasPassword bool     `json:"has_password"`
					HasToken    bool     `json:"has_token"`
				}
				if a.output == outputJSON {
					out := []userJSON{}
					for _, u := range users {
						out = append(out, userJSON{u.Name, append([]string{}, u.Roles...), u.HasPassword, u.HasToken})
					}
					return writeJSON(cmd.OutOrStdout(), out)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "USER\tROLES\tAUTH")
				for _, u := range users {
					var how []string
					if u.HasPassword {
						how = append(how, "password")
					}
					if u.HasToken {
						how = append(how, "token")
					}
					roles := strings.Join(u.Roles, ",")
					if roles == "" {
						roles = "-"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\n", u.Name, roles, strings.Join(how, ","))
				}
				return tw.Flush()
			})
		},
	}
}

package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ringkv/ringkv/client"
)

func newRoleCommand(a *app) *cobra.Command {
	role := &cobra.Command{
		Use:   "role",
		Short: "Manage roles and their permissions (root only while auth is enabled)",
		Long: "A role grants read or readwrite access on the keys with a prefix; users get\n" +
			"roles with kvctl user grant-role. Role root may do everything, cluster\n" +
			"administration and user and role management included.",
	}
	role.AddCommand(
		&cobra.Command{
			Use:   "add NAME",
			Short: "Add a role without permissions",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return a.change(cmd, "Role "+args[0]+" created", func(ctx context.Context, c *client.Client) (uint64, error) {
					return c.RoleAdd(ctx, args[0])
				})
			},
		},
		&cobra.Command{
			Use:   "delete NAME",
			Short: "Delete a role and take it from every user",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return a.change(cmd, "Role "+args[0]+" deleted", func(ctx context.Context, c *client.Client) (uint64, error) {
					return c.RoleDelete(ctx, args[0])
				})
			},
		},
		&cobra.Command{
			Use:     "grant ROLE read|readwrite PREFIX",
			Aliases: []string{"grant-permission"},
			Short:   "Grant a role access on the keys with a prefix",
			Long: "Grant ROLE read or readwrite access on every key that starts with PREFIX\n" +
				"(\"\" for every key), replacing its access on that same prefix. A scan or a\n" +
				"watch of a prefix needs one permission whose prefix is a prefix of it.",
			Example: "  kvctl role grant reader read app/\n  kvctl role grant admin readwrite \"\"",
			Args:    cobra.ExactArgs(3),
			RunE: func(cmd *cobra.Command, args []string) error {
				access := client.Access(args[1])
				if access != client.AccessRead && access != client.AccessReadWrite {
					return fmt.Errorf("access %q: want read or readwrite", args[1])
				}
				return a.change(cmd, "Role "+args[0]+" updated", func(ctx context.Context, c *client.Client) (uint64, error) {
					return c.RoleGrant(ctx, args[0], []byte(args[2]), access)
				})
			},
		},
		&cobra.Command{
			Use:     "revoke ROLE PREFIX",
			Aliases: []string{"revoke-permission"},
			Short:   "Remove a role's permission on exactly a prefix",
			Args:    cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				return a.change(cmd, "Role "+args[0]+" updated", func(ctx context.Context, c *client.Client) (uint64, error) {
					return c.RoleRevoke(ctx, args[0], []byte(args[1]))
				})
			},
		},
		newRoleListCommand(a),
	)
	return role
}

func newRoleListCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the roles and their permissions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				roles, err := c.RoleList(ctx)
				if err != nil {
					return err
				}
				type permJSON struct {
					Prefix         string `json:"prefix"`
					PrefixEncoding string `json:"prefix_encoding,omitempty"`
					Access         string `json:"access"`
				}
				type roleJSON struct {
					Name  string     `json:"name"`
					Perms []permJSON `json:"perms"`
				}
				if a.output == outputJSON {
					out := []roleJSON{}
					for _, r := range roles {
						rj := roleJSON{Name: r.Name, Perms: []permJSON{}}
						for _, p := range r.Perms {
							s, enc := jsonBytes(p.Prefix)
							rj.Perms = append(rj.Perms, permJSON{s, enc, string(p.Access)})
						}
						out = append(out, rj)
					}
					return writeJSON(cmd.OutOrStdout(), out)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ROLE\tACCESS\tPREFIX")
				for _, r := range roles {
					if r.Name == "root" {
						fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, "all", "(everything, and administration)")
						continue
					}
					if len(r.Perms) == 0 {
						fmt.Fprintf(tw, "%s\t-\t-\n", r.Name)
					}
					for _, p := range r.Perms {
						prefix := plain(p.Prefix)
						if len(p.Prefix) == 0 {
							prefix = "(every key)"
						}
						fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, p.Access, prefix)
					}
				}
				return tw.Flush()
			})
		},
	}
}

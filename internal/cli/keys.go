package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/scriptgen/scriptgen/internal/access"
	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/database"
)

// keysCmd creates, lists, rotates and revokes writers' API keys, straight on
// the database (it works with the server down; every replica sees a change
// within its key cache time, 2 s).
func keysCmd(ctx context.Context, c *command, args []string, stdout, stderr io.Writer) error {
	var tenant, name, projects string
	var asJSON bool
	cfg, rest, err := c.parseArgs(args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&tenant, "tenant", "", "create: the `tenant` that owns the key's projects; list: only this tenant's keys")
		fs.StringVar(&name, "name", "", "create: a `name` for the key, for lists and logs (who or what uses it)")
		fs.StringVar(&projects, "projects", "", "create: `p1,p2`: limit the key to these projects of the tenant (default: all of them)")
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	})
	if err != nil {
		return err
	}
	if len(rest) == 0 {
		return usagef("say what to do: create, list, rotate ID or revoke ID")
	}
	st, err := database.Open(ctx, cfg.DatabaseURL, clock.Real{})
	if err != nil {
		return err
	}
	defer st.Close()
	print := func(k access.Key, plain string) error {
		if asJSON {
			return json.NewEncoder(stdout).Encode(k.Info(plain))
		}
		if plain != "" {
			fmt.Fprintf(stdout, "%s\n\nThis is the only time the key is shown: store it now (a secret manager, not a ticket).\n", plain)
		}
		fmt.Fprintf(stdout, "id %s  prefix %s  tenant %s  projects %s  name %q\n", k.ID, k.Prefix, k.Tenant, projectsText(k.Projects), k.Name)
		return nil
	}
	now := time.Now()
	switch action := rest[0]; action {
	case "create":
		if len(rest) != 1 {
			return usagef("create takes no arguments, got %q", rest[1:])
		}
		if tenant == "" || name == "" {
			return usagef("create needs --tenant and --name")
		}
		var list []string
		if projects != "" {
			list = strings.Split(projects, ",")
		}
		plain, k, err := access.Issue(ctx, st, tenant, name, list, now)
		if err != nil {
			return err
		}
		return print(k, plain)
	case "list":
		if len(rest) != 1 {
			return usagef("list takes no arguments, got %q", rest[1:])
		}
		keys, err := st.ListKeys(ctx, tenant)
		if err != nil {
			return err
		}
		if asJSON {
			out := make([]access.KeyInfo, 0, len(keys))
			for _, k := range keys {
				out = append(out, k.Info(""))
			}
			return json.NewEncoder(stdout).Encode(out)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tPREFIX\tTENANT\tPROJECTS\tNAME\tCREATED\tREVOKED")
		for _, k := range keys {
			revoked := "-"
			if !k.Active() {
				revoked = k.RevokedAt.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Prefix, k.Tenant, projectsText(k.Projects), k.Name, k.CreatedAt.Format(time.RFC3339), revoked)
		}
		return tw.Flush()
	case "rotate", "revoke":
		if len(rest) != 2 {
			return usagef("%s takes one key id (scriptgen keys list shows them)", action)
		}
		if action == "revoke" {
			k, err := st.RevokeKey(ctx, rest[1], now)
			if err != nil {
				return fmt.Errorf("revoke %s: %w", rest[1], err)
			}
			if !asJSON {
				fmt.Fprintf(stdout, "revoked; every replica refuses it within 2 s\n")
			}
			return print(k, "")
		}
		plain, next, old, err := access.Rotate(ctx, st, rest[1], now)
		if err != nil {
			return fmt.Errorf("rotate %s: %w", rest[1], err)
		}
		if !asJSON {
			fmt.Fprintf(stdout, "key %s (%s) revoked; its replacement:\n", old.ID, old.Prefix)
		}
		return print(next, plain)
	default:
		return usagef("unknown action %q: want create, list, rotate ID or revoke ID", action)
	}
}

func projectsText(p []string) string {
	if p == nil {
		return "(all)"
	}
	return strings.Join(p, ",")
}

package main

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cnbridged/cnbridged/internal/config"
)

// flagValues are the values shell completion offers for the flags that
// take one of a fixed set, by flag name, wherever a command has the flag:
// --format (run and the root command), --log-level (every config-reading
// command), --event (tap).
func flagValues() map[string][]string {
	return map[string][]string{
		"format":    {config.FormatJSON, config.FormatText},
		"log-level": {"debug", "info", "warn", "error"},
		"event":     {"fork", "exec", "exit", "uid", "gid", "sid", "comm", "ptrace", "coredump", "msg"},
	}
}

// registerValueCompletions gives every command's --format, --log-level
// and --event flag its values for shell completion (cnbridged completion
// bash|zsh|fish asks the binary through cobra's __complete).
func registerValueCompletions(root *cobra.Command) {
	values := flagValues()
	var walk func(*cobra.Command)
	walk = func(cmd *cobra.Command) {
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			if v, ok := values[f.Name]; ok {
				// Only fails for a flag registered twice or missing.
				_ = cmd.RegisterFlagCompletionFunc(f.Name, cobra.FixedCompletions(v, cobra.ShellCompDirectiveNoFileComp))
			}
		})
		for _, c := range cmd.Commands() {
			walk(c)
		}
	}
	walk(root)
}

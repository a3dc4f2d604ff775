package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/caddy-sessions/caddy-sessions/bench/internal/benchkit"
)

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, progName+": "+format+"\n", args...)
}

// failedCalls is INFO commandstats failed_calls + rejected_calls per
// command, summed over the servers: which command the errors came from.
func failedCalls(ctx context.Context, r *benchkit.Redis) (map[string]int64, error) {
	out := map[string]int64{}
	for i, n := range r.Nodes {
		info, err := n.Info(ctx, "commandstats").Result()
		if err != nil {
			return nil, fmt.Errorf("INFO commandstats on %s: %w", r.Addrs[i], err)
		}
		for k, v := range benchkit.ParseInfo(info) {
			if name, ok := strings.CutPrefix(k, "cmdstat_"); ok {
				if f := benchkit.InfoField(v, "failed_calls") + benchkit.InfoField(v, "rejected_calls"); f > 0 {
					out[name] += f
				}
			}
		}
	}
	return out, nil
}

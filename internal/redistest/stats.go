package redistest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// Statistics of servers (INFO), for tests and benchmarks that count what a
// client sent or what the data costs.

// Info runs INFO for sections on s and splits the answer into its
// key:value lines.
func (s *Server) Info(ctx context.Context, sections ...string) (map[string]string, error) {
	info, err := s.admin.Info(ctx, sections...).Result()
	if err != nil {
		return nil, fmt.Errorf("INFO %s on %s: %w", strings.Join(sections, " "), s.Addr, err)
	}
	return parseInfo(info), nil
}

// Field is the integer field name of an INFO value such as
// "calls=3,usec=12"; 0 if missing.
func Field(v, name string) int64 {
	for _, kv := range strings.Split(v, ",") {
		if k, val, ok := strings.Cut(kv, "="); ok && k == name {
			n, _ := strconv.ParseInt(val, 10, 64)
			return n
		}
	}
	return 0
}

// Stats are INFO commandstats and errorstats, summed over servers.
type Stats struct {
	// Calls, Usec and Failed are by command as Redis names it ("get",
	// "client|setinfo"): calls, microseconds spent in it, and
	// failed_calls + rejected_calls (commands that never failed are
	// missing from Failed).
	Calls, Usec, Failed map[string]int64
	// Errors counts replies by error prefix ("ERR", "NOSCRIPT", ...).
	Errors map[string]int64
}

// ReadStats reads Stats of servers (one INFO each).
func ReadStats(ctx context.Context, servers ...*Server) (Stats, error) {
	st := Stats{Calls: map[string]int64{}, Usec: map[string]int64{}, Failed: map[string]int64{}, Errors: map[string]int64{}}
	for _, s := range servers {
		info, err := s.Info(ctx, "commandstats", "errorstats")
		if err != nil {
			return st, err
		}
		for k, v := range info {
			if cmd, ok := strings.CutPrefix(k, "cmdstat_"); ok {
				st.Calls[cmd] += Field(v, "calls")
				st.Usec[cmd] += Field(v, "usec")
				if f := Field(v, "failed_calls") + Field(v, "rejected_calls"); f > 0 {
					st.Failed[cmd] += f
				}
			} else if prefix, ok := strings.CutPrefix(k, "errorstat_"); ok {
				st.Errors[prefix] += Field(v, "count")
			}
		}
	}
	return st, nil
}

// Memory is INFO memory and DBSIZE, summed over servers.
type Memory struct {
	Used    int64 // used_memory
	Dataset int64 // used_memory_dataset: Redis's own overhead left out
	Clients int64 // mem_clients_normal: the connections' buffers
	Keys    int64 // DBSIZE
}

// Data is used_memory without the connections' buffers, which come and go
// with the load and are no data.
func (m Memory) Data() int64 { return m.Used - m.Clients }

// ReadMemory reads Memory of servers, each after MEMORY PURGE (jemalloc
// returns dirty pages; used_memory itself counts what Redis allocated, so
// PURGE mostly steadies the RSS).
func ReadMemory(ctx context.Context, servers ...*Server) (Memory, error) {
	var m Memory
	for _, s := range servers {
		_ = s.admin.Do(ctx, "MEMORY", "PURGE").Err() // best effort (jemalloc only)
		info, err := s.Info(ctx, "memory")
		if err != nil {
			return m, err
		}
		atoi := func(k string) int64 { v, _ := strconv.ParseInt(info[k], 10, 64); return v }
		m.Used += atoi("used_memory")
		m.Dataset += atoi("used_memory_dataset")
		m.Clients += atoi("mem_clients_normal")
		k, err := s.admin.DBSize(ctx).Result()
		if err != nil {
			return m, fmt.Errorf("DBSIZE on %s: %w", s.Addr, err)
		}
		m.Keys += k
	}
	return m, nil
}

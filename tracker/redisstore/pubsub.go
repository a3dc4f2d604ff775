package redisstore

// Invalidations between instances, over a capped Redis Stream (the
// invalidation log): every instance reads it from the last entry it saw,
// so one that was cut off (a broken connection, Redis paused) gets what
// it missed when it reads again, and one that starts replays the recent
// entries (the deny list of revocations still held). Only when the log no
// longer holds what an instance missed (it was trimmed past the cap, or
// Redis came back empty) do subscribers resync: they forget their caches.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-sessions/caddy-sessions/tracker/store"
)

const (
	// logCap bounds the invalidation log (approximately: MAXLEN ~).
	// Revocations older than the newest logCap entries are not replayed
	// to an instance that starts; its store check still refuses them.
	logCap = 10000
	// logTTL: a log nobody wrote to for this long goes (an instance that
	// reconnects after that resyncs).
	logTTL = 7 * 24 * time.Hour
	// readBlock is how long one read of the log waits for news; a
	// reader that was unsubscribed ends within it.
	readBlock = time.Second
	// retryPause separates reads after an error.
	retryPause = 200 * time.Millisecond
	// replayTimeout bounds the replay a Subscribe waits for.
	replayTimeout = 2 * time.Second
)

type subscriber struct {
	fn     func(store.Invalidation)
	resync func()
	cancel context.CancelFunc
}

// Publish implements Store: one entry appended to the invalidation log.
func (s *Store) Publish(ctx context.Context, inv store.Invalidation) error {
	b, _ := json.Marshal(inv)
	pipe := s.rdb.Pipeline()
	add := pipe.XAdd(ctx, &redis.XAddArgs{
		Stream: InvalidationChannel, MaxLen: s.logCap(), Approx: s.capForTest == 0, Values: []any{"m", b},
	})
	pipe.PExpire(ctx, InvalidationChannel, logTTL)
	_, _ = pipe.Exec(ctx)
	if err := add.Err(); err != nil {
		return fmt.Errorf("redis publish: %w", err)
	}
	return nil
}

func (s *Store) logCap() int64 {
	if s.capForTest > 0 {
		return s.capForTest
	}
	return logCap
}

// Subscribe implements Store: a reader of the log of its own, which
// replays the log first, so a tracker that starts (or a new config's, on
// a reload) learns the recent denials.
func (s *Store) Subscribe(fn func(store.Invalidation), resync func()) func() {
	ctx, cancel := context.WithCancel(context.Background())
	sub := &subscriber{fn: fn, resync: resync, cancel: cancel}
	s.mu.Lock()
	id := s.nextID
	s.nextID++
	s.subs[id] = sub
	s.mu.Unlock()
	// The replay happens before Subscribe returns, so a tracker (a new
	// config's, on a reload) knows the recent revocations before it
	// answers its first request; bounded, since Redis may be down.
	rctx, rcancel := context.WithTimeout(ctx, replayTimeout)
	last := s.replay(rctx, sub)
	rcancel()
	s.readers.Add(1)
	go s.listen(ctx, sub, last)
	return func() {
		s.mu.Lock()
		delete(s.subs, id)
		s.mu.Unlock()
		// The reader is woken (readerConn) or ends when its read times
		// out (within readBlock); it delivers nothing more.
		cancel()
	}
}

func (s *Store) deliver(ctx context.Context, sub *subscriber, msgs []redis.XMessage) {
	for _, m := range msgs {
		if ctx.Err() != nil {
			return
		}
		raw, _ := m.Values["m"].(string)
		var inv store.Invalidation
		if json.Unmarshal([]byte(raw), &inv) != nil {
			continue
		}
		sub.fn(inv)
	}
}

// listen reads the log from where it left off: the whole log first
// (replay), then it blocks for news. After each read it checks that the
// entry it read from is still in the log: if not, the log lost entries
// this reader had not read (trimmed past the cap while it was cut off, or
// Redis came back empty), and the subscriber resyncs. The check follows
// the read because the client retries a read whose connection broke,
// unseen; and it is a command of its own, since in a pipeline the
// blocking read would be cut short by the client's read timeout.
func (s *Store) listen(ctx context.Context, sub *subscriber, last string) {
	defer s.readers.Done()
	rd, release := s.readerConn(ctx)
	defer func() { release() }()
	for ctx.Err() == nil {
		block := readBlock
		if last == "0-0" {
			block = -1 // the replay: no waiting
		}
		res, err := rd.XRead(ctx, &redis.XReadArgs{Streams: []string{InvalidationChannel, last}, Count: 512, Block: block}).Result()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && !errors.Is(err, redis.Nil):
			// The connection may be gone for good (killed, Redis
			// restarted): take a new one.
			release()
			s.pause(ctx)
			rd, release = s.readerConn(ctx)
			continue
		}
		if last != "0-0" && last != "0-1" {
			got, err := rd.XRangeN(ctx, InvalidationChannel, last, last, 1).Result()
			if err != nil {
				release()
				s.pause(ctx)
				rd, release = s.readerConn(ctx)
				continue // read again from last: nothing delivered yet
			}
			if len(got) == 0 {
				if sub.resync != nil {
					sub.resync()
				}
				if errors.Is(err, redis.Nil) {
					// What the log holds now is all newer than last:
					// read it from its start (and resync once only).
					last = "0-1"
					continue
				}
			}
		}
		if errors.Is(err, redis.Nil) {
			if last == "0-0" {
				last = "0-1" // nothing to replay; from now on, block
			}
			continue
		}
		for _, st := range res {
			if n := len(st.Messages); n > 0 {
				s.deliver(ctx, sub, st.Messages)
				last = st.Messages[n-1].ID
			}
		}
	}
}

// replay delivers the log's entries to sub and returns the id of the last
// one ("0-1" for an empty log, "0-0" if it could not be read: the reader
// replays then).
func (s *Store) replay(ctx context.Context, sub *subscriber) string {
	last := "0-0"
	for {
		res, err := s.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{InvalidationChannel, last}, Count: 512, Block: -1}).Result()
		switch {
		case errors.Is(err, redis.Nil):
			if last == "0-0" {
				return "0-1"
			}
			return last
		case err != nil:
			return last
		}
		n := 0
		for _, st := range res {
			if k := len(st.Messages); k > 0 {
				s.deliver(ctx, sub, st.Messages)
				last = st.Messages[k-1].ID
				n += k
			}
		}
		if n == 0 {
			return last
		}
	}
}

// logReader is what a reader reads the log with.
type logReader interface {
	XRead(ctx context.Context, a *redis.XReadArgs) *redis.XStreamSliceCmd
	XRangeN(ctx context.Context, stream, start, stop string, count int64) *redis.XMessageSliceCmd
}

// readerConn gives a reader a connection of its own when the client can
// (standalone or Sentinel, on a Redis that has CLIENT UNBLOCK): when the
// reader is unsubscribed, its blocked read is woken at once and its
// connection closed, instead of a pooled connection being held until the
// read times out (a reload would grow the pool). Otherwise (a cluster,
// the embedded store) it reads through the pool.
func (s *Store) readerConn(ctx context.Context) (logReader, func()) {
	c, ok := s.rdb.(*redis.Client)
	if !ok {
		return s.rdb, func() {}
	}
	conn := c.Conn()
	id, err := conn.ClientID(ctx).Result()
	if err != nil {
		_ = conn.Close()
		return s.rdb, func() {}
	}
	stop := context.AfterFunc(ctx, func() {
		uctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = s.rdb.ClientUnblock(uctx, id).Err()
	})
	return conn, func() {
		stop()
		_ = conn.Close()
	}
}

func (s *Store) pause(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(retryPause):
	}
}

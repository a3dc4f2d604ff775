package redisstore

// Invalidations between instances, over Redis pub/sub.

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/caddy-sessions/caddy-sessions/tracker/store"

	"github.com/redis/go-redis/v9"
)

type subscriber struct {
	fn     func(store.Invalidation)
	resync func()
}

// Publish implements Store.
func (s *Store) Publish(ctx context.Context, inv store.Invalidation) error {
	b, _ := json.Marshal(inv)
	if err := s.rdb.Publish(ctx, InvalidationChannel, b).Err(); err != nil {
		return fmt.Errorf("redis publish: %w", err)
	}
	return nil
}

// Subscribe implements Store. The first subscriber starts one Redis
// subscription shared by all.
func (s *Store) Subscribe(fn func(store.Invalidation), resync func()) func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.nextID
	s.nextID++
	s.subs[id] = subscriber{fn, resync}
	if s.cancel == nil {
		ctx, cancel := context.WithCancel(context.Background())
		s.cancel, s.done = cancel, make(chan struct{})
		go s.listen(ctx, s.done)
	}
	return func() {
		s.mu.Lock()
		delete(s.subs, id)
		s.mu.Unlock()
	}
}

func (s *Store) each(f func(subscriber)) {
	s.mu.Lock()
	subs := make([]subscriber, 0, len(s.subs))
	for _, sub := range s.subs {
		subs = append(subs, sub)
	}
	s.mu.Unlock()
	for _, sub := range subs {
		f(sub)
	}
}

// listen follows the invalidation channel. go-redis reconnects a broken
// subscription by itself; every (re)subscription confirmation after the
// first means messages may have been lost, so subscribers resync.
func (s *Store) listen(ctx context.Context, done chan struct{}) {
	defer close(done)
	ps := s.rdb.Subscribe(ctx, InvalidationChannel)
	// Receive does not watch ctx: closing the subscription is what ends it.
	go func() {
		<-ctx.Done()
		ps.Close()
	}()
	first := true
	for {
		msg, err := ps.Receive(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			// The connection is gone. Caches keep serving (known
			// sessions keep working, refusals keep refusing) until the
			// subscription is back; then they resync, since messages
			// may have been lost meanwhile.
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if !first {
				s.each(func(sub subscriber) {
					if sub.resync != nil {
						sub.resync()
					}
				})
			}
			first = false
		case *redis.Message:
			var inv store.Invalidation
			if json.Unmarshal([]byte(m.Payload), &inv) != nil {
				continue
			}
			s.each(func(sub subscriber) { sub.fn(inv) })
		}
	}
}

package offsite

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Copies and garbage collection exclude each other through lock objects
// under locks/: a copy that has listed an object as present must not have it
// collected before its index refers to it. Each side writes its own lock
// and then lists the others' (S3 reads its own writes), so of two that start
// together at least one sees the other and backs off. A lock is refreshed
// while its holder runs; one not refreshed for lockStale was left by a dead
// worker and is ignored.
const (
	locksDir     = "locks/"
	lockRefresh  = 5 * time.Minute
	lockStale    = 30 * time.Minute
	copyLockKind = "copy"
	gcLockKind   = "collect"
)

// ErrBusy is the other side holding the store: a copy while garbage is
// collected, or a collection while a copy runs. It passes on a retry.
var ErrBusy = errors.New("the off-site store is busy")

// lockHold is a lock this process holds.
type lockHold struct {
	b      *Bucket
	key    string
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	err    error
}

// acquire writes a lock of kind and fails with ErrBusy when a fresh lock of
// the other kind is there. The returned context is cancelled when the lock
// can no longer be refreshed, so that its holder stops before another side
// takes it for stale.
func acquire(ctx context.Context, b *Bucket, kind, other, what string) (context.Context, *lockHold, error) {
	tag := make([]byte, 6)
	if _, err := rand.Read(tag); err != nil {
		return nil, nil, err
	}
	key := locksDir + kind + "-" + hex.EncodeToString(tag)
	if err := b.Put(ctx, key, nil, time.Time{}); err != nil {
		return nil, nil, fmt.Errorf("take the %s lock: %w", kind, err)
	}
	h := &lockHold{b: b, key: key, done: make(chan struct{})}
	others, err := freshLocks(ctx, b, other)
	if err == nil && len(others) > 0 {
		err = fmt.Errorf("%w: %s waits: %s lock %s is held", ErrBusy, what, other, others[0])
	}
	if err != nil {
		_ = b.Remove(context.WithoutCancel(ctx), key)
		return nil, nil, err
	}
	lctx, cancel := context.WithCancel(ctx)
	h.cancel = cancel
	go h.refresh(lctx)
	return lctx, h, nil
}

func (h *lockHold) refresh(ctx context.Context) {
	defer close(h.done)
	t := time.NewTicker(lockRefresh)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := h.b.Put(ctx, h.key, nil, time.Time{}); err == nil {
			last = time.Now()
		} else if time.Since(last) > lockStale/2 {
			h.mu.Lock()
			h.err = fmt.Errorf("lock %s could not be refreshed for %s: %w", h.key, time.Since(last).Round(time.Second), err)
			h.mu.Unlock()
			h.cancel()
			return
		}
	}
}

// release removes the lock; it returns why the lock was lost, if it was.
func (h *lockHold) release(ctx context.Context) error {
	h.cancel()
	<-h.done
	_ = h.b.Remove(context.WithoutCancel(ctx), h.key) // a lock left behind goes stale
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

// freshLocks are the locks of kind refreshed within lockStale.
func freshLocks(ctx context.Context, b *Bucket, kind string) ([]string, error) {
	var out []string
	err := b.ListInfo(ctx, locksDir+kind+"-", func(key string, _ int64, modified time.Time) error {
		if time.Since(modified) < lockStale && strings.HasPrefix(key, locksDir+kind+"-") {
			out = append(out, key)
		}
		return nil
	})
	return out, err
}

package offsite_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/project-vulcan/vulcan-backup/internal/offsite"
)

// collector is a collection over w's bucket with the copier's name key.
func (w *world) collector(days int, now time.Time) *offsite.Collector {
	return &offsite.Collector{Bucket: w.bucket, Names: w.copier().Names, Days: days, Now: now}
}

// keys lists the objects under dir in w's bucket.
func (w *world) keys(dir string) []string {
	w.t.Helper()
	var out []string
	if err := w.bucket.List(context.Background(), dir, func(k string, _ int64) error {
		out = append(out, k)
		return nil
	}); err != nil {
		w.t.Fatal(err)
	}
	return out
}

// verifyAll checks every object of every remaining remote backup.
func (w *world) verifyAll(ids ...string) {
	w.t.Helper()
	for _, id := range ids {
		if _, err := w.reader().Verify(context.Background(), id, 1); err != nil {
			w.t.Fatalf("backup %s after collection: %v", id, err)
		}
	}
}

// Two backups a month apart, the tree half changed between them: retention
// removes the old one remotely, collection the objects only it used, and
// the new one is whole.
func TestCollectionAppliesRetentionAndRemovesOnlyGarbage(t *testing.T) {
	w := newWorld(t)
	w.tree(30, 1)
	old := w.backup("20261101_020000")
	w.copy(old.ID)
	before := len(w.keys("data/"))
	w.tree(15, 2) // the first 15 files change
	recent := w.backup("20261201_020000")
	w.copy(recent.ID)
	if len(w.keys("data/")) <= before {
		t.Fatal("the second backup added no objects: the test changes nothing")
	}
	rep, err := w.collector(7, time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)).Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Deleted, []string{old.ID}) || !slices.Equal(rep.Kept, []string{recent.ID}) || rep.Removed == 0 || rep.Skipped != "" {
		t.Fatalf("collection %+v", rep)
	}
	if got, want := len(w.keys("data/")), len(recent.Members.List); got > want {
		t.Fatalf("%d objects left for a backup of %d members", got, want)
	}
	if left := w.keys("backups/" + old.ID + "/"); len(left) != 0 {
		t.Fatalf("the deleted backup left %v", left)
	}
	if left := w.keys("locks/"); len(left) != 0 {
		t.Fatalf("locks left: %v", left)
	}
	w.verifyAll(recent.ID)

	// Once more: nothing left to do.
	rep, err = w.collector(7, time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)).Collect(context.Background())
	if err != nil || len(rep.Deleted) != 0 || rep.Removed != 0 {
		t.Fatalf("second collection %+v %v", rep, err)
	}
}

// A collection that starts while a copy runs backs off, and a copy that
// starts while a collection runs waits: neither removes what the other
// counts on, and both backups verify once the copy completes.
func TestCollectionBesideARunningCopyLosesNothing(t *testing.T) {
	w := newWorld(t)
	w.tree(30, 1)
	old := w.backup("20261101_020000")
	w.copy(old.ID)
	w.tree(30, 3)
	recent := w.backup("20261201_020000")

	c := w.copier()
	c.Parallel = 1
	halfway, resume := make(chan struct{}), make(chan struct{})
	c.Progress = func(p offsite.CopyProgress) {
		if p.Uploaded == 1 {
			close(halfway)
			<-resume
		}
	}
	copied := make(chan error, 1)
	go func() {
		_, err := c.Copy(context.Background(), w.dir, recent.ID)
		copied <- err
	}()
	<-halfway
	// The old backup is past retention and the new one not yet indexed: a
	// collection now would remove objects the copy found present.
	rep, err := w.collector(7, time.Date(2026, 12, 20, 0, 0, 0, 0, time.UTC)).Collect(context.Background())
	if !errors.Is(err, offsite.ErrBusy) || rep.Removed != 0 || len(rep.Deleted) != 0 {
		t.Fatalf("collection beside a copy: %+v %v, want it to back off", rep, err)
	}
	close(resume)
	if err := <-copied; err != nil {
		t.Fatal(err)
	}
	w.verifyAll(old.ID, recent.ID)

	// The other way round: a copy that finds a collection holding the
	// store waits for it.
	hold := make(chan struct{})
	gc := w.collector(7, time.Date(2026, 12, 20, 0, 0, 0, 0, time.UTC))
	gc.Progress = func(offsite.CollectReport) {
		select {
		case <-hold:
		default:
			close(hold)
			time.Sleep(2 * time.Second) // the copy below tries meanwhile
		}
	}
	collected := make(chan error, 1)
	go func() {
		_, err := gc.Collect(context.Background())
		collected <- err
	}()
	<-hold
	w.tree(5, 4)
	third := w.backup("20261215_020000")
	if _, err := w.copier().Copy(context.Background(), w.dir, third.ID); !errors.Is(err, offsite.ErrBusy) {
		t.Fatalf("copy beside a collection: %v, want it to wait", err)
	}
	if err := <-collected; err != nil {
		t.Fatal(err)
	}
	w.copy(third.ID)
	w.verifyAll(recent.ID, third.ID)
}

// A collection cut short (its context cancelled after the first object, or
// a retention that removed an index and nothing else) is finished by the
// next one.
func TestInterruptedCollectionResumes(t *testing.T) {
	w := newWorld(t)
	w.tree(30, 1)
	old := w.backup("20261101_020000")
	w.copy(old.ID)
	w.tree(30, 5)
	recent := w.backup("20261201_020000")
	w.copy(recent.ID)
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)

	ctx, cancel := context.WithCancel(context.Background())
	gc := w.collector(7, now)
	gc.Progress = func(r offsite.CollectReport) {
		if r.Removed == 1 {
			cancel()
		}
	}
	if _, err := gc.Collect(ctx); err == nil {
		t.Fatal("the cut collection did not stop")
	}
	if len(w.keys("data/")) <= len(recent.Members.List) {
		t.Fatal("the cut collection removed everything: nothing was left to resume")
	}
	rep, err := w.collector(7, now).Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Removed == 0 || len(w.keys("data/")) > len(recent.Members.List) || len(w.keys("locks/")) != 0 {
		t.Fatalf("the resumed collection %+v left %d objects for %d members", rep, len(w.keys("data/")), len(recent.Members.List))
	}
	w.verifyAll(recent.ID)

	// A retention cut after the index: the manifest and refs are tidied.
	w.tree(30, 6)
	third := w.backup("20261215_020000")
	w.copy(third.ID)
	if err := w.bucket.Remove(context.Background(), offsite.IndexKey(recent.ID)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.collector(7, time.Date(2026, 12, 16, 0, 0, 0, 0, time.UTC)).Collect(context.Background()); err != nil {
		t.Fatal(err)
	}
	if left := w.keys("backups/" + recent.ID + "/"); len(left) != 0 {
		t.Fatalf("the half-removed backup left %v", left)
	}
	w.verifyAll(third.ID)
}

// With Object Lock, objects are written retained for the policy and a day;
// a collection leaves what is still retained, and says so.
func TestCollectionLeavesLockedObjects(t *testing.T) {
	w := newWorldWith(t, true)
	if !w.bucket.Locked(context.Background()) {
		t.Fatal("the bucket was created with Object Lock, but the store says it has none")
	}
	w.tree(20, 1)
	old := w.backup("20261101_020000")
	c := w.copier()
	c.Retain = 8 * 24 * time.Hour
	if _, err := c.Copy(context.Background(), w.dir, old.ID); err != nil {
		t.Fatal(err)
	}
	before := w.keys("data/")
	w.tree(5, 7) // the other 15 files are unchanged: their members are shared
	recent := w.backup("20261201_020000")
	shared := ""
	for _, x := range recent.Members.List {
		if k := c.Names.ObjectKey(x.SHA256); slices.Contains(before, k) {
			shared = k
		}
	}
	if shared == "" {
		t.Fatal("the two backups share no object: the test proves nothing")
	}
	first, err := w.bucket.RetainedUntil(context.Background(), shared)
	if err != nil || time.Until(first) < 7*24*time.Hour {
		t.Fatalf("an object of the first copy is retained until %v (%v)", first, err)
	}
	c.Retain = 9 * 24 * time.Hour
	if _, err := c.Copy(context.Background(), w.dir, recent.ID); err != nil {
		t.Fatal(err)
	}
	// An object both backups use is retained as long as the newer one.
	if again, err := w.bucket.RetainedUntil(context.Background(), shared); err != nil || !again.After(first.Add(12*time.Hour)) {
		t.Fatalf("an object the second copy reuses is retained until %v, as before (%v): not extended", again, err)
	}
	rep, err := w.collector(7, time.Now().Add(60*24*time.Hour)).Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Locked == 0 || slices.Contains(rep.Deleted, old.ID) || !slices.Contains(rep.Kept, old.ID) {
		t.Fatalf("collection of locked objects %+v: want the old backup kept as locked", rep)
	}
	w.verifyAll(old.ID, recent.ID)
}

package keydir

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

var ctx = context.Background()

func openTest(t *testing.T) *Directory {
	t.Helper()
	d, err := open("", vfs.NewMem(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// pkg is a package that passed Check: the directory stores what it is
// given, so its tests need no real KeyPackage (Check's tests use real
// ones).
func pkg(name string, notAfter time.Time) Package {
	ref := sha256.Sum256([]byte(name))
	return Package{Ref: ref[:], Data: []byte(name), NotAfter: notAfter}
}

func TestClaimTakesOnePackagePerDeviceThenTheLastResort(t *testing.T) {
	t.Parallel()
	d := openTest(t)
	later := time.Now().Add(time.Hour)
	if _, ch, err := d.Publish(ctx, "alice", "phone", []Package{pkg("p1", later), pkg("p2", later)}, ptr(pkg("phone-last", later))); err != nil || !ch.Added || ch.List.Version != 1 {
		t.Fatalf("publish: %+v %v", ch, err)
	}
	st, ch, err := d.Publish(ctx, "alice", "laptop", []Package{pkg("l1", later), pkg("l1", later)}, nil)
	if err != nil || !ch.Added || ch.List.Version != 2 || st.Available != 1 || st.LastResort || !st.Low {
		t.Fatalf("publish laptop: %+v %+v %v", st, ch, err)
	}
	// One-time packages in any order, each once; then the last resort,
	// kept.
	got := map[string]int{}
	for i := range 4 {
		_, claimed, err := d.Claim("alice")
		if err != nil {
			t.Fatal(err)
		}
		if want := map[int]int{0: 2}[i]; (want == 0 && len(claimed) != 1) || (want != 0 && len(claimed) != want) {
			t.Errorf("claim %d: %d packages", i, len(claimed))
		}
		for _, c := range claimed {
			got[string(c.Data)]++
			if (string(c.Data) == "phone-last") != c.LastResort {
				t.Errorf("claim %d: %s last resort %v", i, c.Data, c.LastResort)
			}
		}
	}
	if want := map[string]int{"p1": 1, "p2": 1, "l1": 1, "phone-last": 2}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("claimed %v, want %v", got, want)
	}
	st, err = d.Status("alice", "phone")
	if err != nil || st.Available != 0 || !st.LastResort || !st.Low {
		t.Errorf("status after claims: %+v %v", st, err)
	}
}

func TestClaimSkipsExpiredPackages(t *testing.T) {
	t.Parallel()
	d := openTest(t)
	now := time.Now()
	d.now = func() time.Time { return now }
	if _, _, err := d.Publish(ctx, "bob", "tab", []Package{pkg("old", now.Add(-time.Second)), pkg("new", now.Add(time.Hour))}, ptr(pkg("last", now.Add(-time.Minute)))); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"new", ""} {
		_, got, err := d.Claim("bob")
		if err != nil {
			t.Fatal(err)
		}
		var name string
		if len(got) == 1 {
			name = string(got[0].Data)
		}
		if len(got) > 1 || name != want {
			t.Errorf("claimed %v, want %q", got, want)
		}
	}
}

func TestRemoveDeviceDropsItsPackagesAndBumpsTheVersion(t *testing.T) {
	t.Parallel()
	d := openTest(t)
	later := time.Now().Add(time.Hour)
	for _, dev := range []string{"a", "b"} {
		if _, _, err := d.Publish(ctx, "carol", dev, []Package{pkg(dev, later)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	ch, err := d.RemoveDevice(ctx, "carol", "a")
	if err != nil || !ch.Removed || ch.List.Version != 3 || len(ch.List.Devices) != 1 || ch.List.Devices[0].ID != "b" {
		t.Fatalf("remove: %+v %v", ch, err)
	}
	if _, err := d.RemoveDevice(ctx, "carol", "a"); !errors.Is(err, ErrNoDevice) {
		t.Errorf("second remove: %v", err)
	}
	v, got, err := d.Claim("carol")
	if err != nil || v != 3 || len(got) != 1 || got[0].Device != "b" {
		t.Errorf("claim after remove: %+v %v", got, err)
	}
	// Publishing again for the removed device adds it back, as a new
	// version.
	if _, ch, err := d.Publish(ctx, "carol", "a", []Package{pkg("a2", later)}, nil); err != nil || !ch.Added || ch.List.Version != 4 {
		t.Errorf("re-add: %+v %v", ch, err)
	}
}

func TestPublishRefusesBeyondTheLimits(t *testing.T) {
	t.Parallel()
	d := openTest(t)
	later := time.Now().Add(time.Hour)
	var many []Package
	for i := range MaxPackagesPerDevice + 1 {
		many = append(many, pkg(fmt.Sprint(i), later))
	}
	if _, _, err := d.Publish(ctx, "dan", "x", many, nil); !errors.Is(err, ErrFull) {
		t.Errorf("too many packages: %v", err)
	}
	if st, err := d.Status("dan", "x"); err != nil || st.Available != 0 {
		t.Errorf("a refused publication wrote: %+v %v", st, err)
	}
	for i := range MaxDevicesPerUser {
		if _, _, err := d.Publish(ctx, "dan", fmt.Sprint("d", i), nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := d.Publish(ctx, "dan", "onemore", nil, nil); !errors.Is(err, ErrFull) {
		t.Errorf("too many devices: %v", err)
	}
}

// TestConcurrentClaimsNeverShareAPackage: many claimers at once, and
// publishers topping up meanwhile; every one-time package is handed out
// at most once.
func TestConcurrentClaimsNeverShareAPackage(t *testing.T) {
	t.Parallel()
	d := openTest(t)
	later := time.Now().Add(time.Hour)
	const packages, claimers = 60, 40
	var first []Package
	for i := range packages / 2 {
		first = append(first, pkg(fmt.Sprint("p", i), later))
	}
	if _, _, err := d.Publish(ctx, "erin", "phone", first, ptr(pkg("last", later))); err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		seen = map[string]int{}
		wg   sync.WaitGroup
	)
	wg.Go(func() {
		var more []Package
		for i := packages / 2; i < packages; i++ {
			more = append(more, pkg(fmt.Sprint("p", i), later))
		}
		if _, _, err := d.Publish(ctx, "erin", "phone", more, nil); err != nil {
			t.Error(err)
		}
	})
	for range claimers {
		wg.Go(func() {
			for range 2 {
				_, got, err := d.Claim("erin")
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, c := range got {
					seen[string(c.Data)]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	total := 0
	for name, n := range seen {
		total += n
		if n > 1 && name != "last" {
			t.Errorf("%s handed out %d times", name, n)
		}
	}
	if total != 2*claimers {
		t.Errorf("%d packages handed out to %d claims", total, 2*claimers)
	}
	st, err := d.Status("erin", "phone")
	if err != nil || st.Available+len(seen)-boolInt(seen["last"] > 0) != packages {
		t.Errorf("status %+v, %d distinct claimed: packages lost or made up (%v)", st, len(seen), err)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func ptr[T any](v T) *T { return &v }

// recorder is a Recorder that keeps what it is given, or fails.
type recorder struct {
	got  []string
	fail error
}

func (r *recorder) Append(_ context.Context, user, device string, version uint64, added bool) error {
	if r.fail != nil {
		return r.fail
	}
	r.got = append(r.got, fmt.Sprint(user, "/", device, " v", version, " added=", added))
	return nil
}

// TestDeviceChangesAreRecordedBeforeTheyAreCommitted: each device added
// or removed is recorded once with the list's new version; a change the
// recorder refuses is not made.
func TestDeviceChangesAreRecordedBeforeTheyAreCommitted(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	d, err := open("", vfs.NewMem(), slog.New(slog.DiscardHandler), WithRecorder(rec))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	later := time.Now().Add(time.Hour)
	for _, step := range []func() error{
		func() error {
			_, _, err := d.Publish(ctx, "alice", "phone", []Package{pkg("a", later)}, nil)
			return err
		},
		func() error {
			_, _, err := d.Publish(ctx, "alice", "phone", []Package{pkg("b", later)}, nil)
			return err
		}, // not a change
		func() error { _, _, err := d.Publish(ctx, "alice", "laptop", nil, ptr(pkg("c", later))); return err },
		func() error { _, err := d.RemoveDevice(ctx, "alice", "phone"); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"alice/phone v1 added=true", "alice/laptop v2 added=true", "alice/phone v3 added=false"}
	if fmt.Sprint(rec.got) != fmt.Sprint(want) {
		t.Errorf("recorded %v, want %v", rec.got, want)
	}
	rec.fail = errors.New("broker down")
	if _, _, err := d.Publish(ctx, "alice", "tablet", []Package{pkg("t", later)}, nil); !errors.Is(err, rec.fail) {
		t.Errorf("publishing a new device with the recorder failing: %v", err)
	}
	if _, err := d.RemoveDevice(ctx, "alice", "laptop"); !errors.Is(err, rec.fail) {
		t.Errorf("removing with the recorder failing: %v", err)
	}
	l, err := d.Devices("alice")
	if err != nil || l.Version != 3 || len(l.Devices) != 1 || l.Devices[0].ID != "laptop" {
		t.Errorf("a change the recorder refused was made: %+v %v", l, err)
	}
	if st, err := d.Status("alice", "tablet"); err != nil || st.Available != 0 {
		t.Errorf("the refused device's packages were kept: %+v %v", st, err)
	}
}

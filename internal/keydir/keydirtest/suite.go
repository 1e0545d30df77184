// Package keydirtest is the conformance suite of the key directory's
// adapters: the Pebble one (keydir.Directory, embedded) and the ScyllaDB
// one (keydir/scyllakeys, shared by every gateway). Each adapter's tests
// call Run with a way to open a fresh, empty directory.
//
// The suite states the contract: a claim hands out one KeyPackage per
// device of the user's list, a one-time one at most once ever, else the
// last-resort one (kept); expired packages are never handed out; device
// lists are versioned, one version per device added or removed; the
// limits refuse without writing; every change of a device list is
// recorded before it is committed, and a change the recorder refuses is
// not made; and many concurrent claimers, through every instance the
// adapter can open over one store, never share a one-time KeyPackage.
package keydirtest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/keydir"
)

// Directory is what the suite needs of an adapter.
type Directory interface {
	Publish(ctx context.Context, user, device string, pkgs []keydir.Package, lastResort *keydir.Package) (keydir.Status, keydir.DeviceChange, error)
	Status(ctx context.Context, user, device string) (keydir.Status, error)
	Claim(ctx context.Context, user string) (version uint64, claimed []keydir.Claimed, err error)
	Devices(ctx context.Context, user string) (keydir.DeviceList, error)
	RemoveDevice(ctx context.Context, user, device string) (keydir.DeviceChange, error)
}

// Options are what a test asks of a new directory.
type Options struct {
	// Recorder, when not nil, records the directory's device changes.
	Recorder keydir.Recorder
	// Now, when not nil, is the directory's clock.
	Now func() time.Time
}

// Adapter opens directories for the suite.
type Adapter struct {
	// Open returns a fresh, empty directory, closed when t ends.
	Open func(t *testing.T, o Options) Directory
	// Peer, when not nil, returns another instance over the same store
	// as d (another session, as another gateway node has), closed when t
	// ends. An adapter whose store one process owns leaves it nil, and
	// the concurrent tests run on d alone.
	Peer func(t *testing.T, d Directory, o Options) Directory
}

// Run runs the suite.
func Run(t *testing.T, a Adapter) {
	tests := []struct {
		name string
		f    func(*testing.T, Adapter)
	}{
		{"ClaimTakesOnePackagePerDeviceThenTheLastResort", testClaimOrder},
		{"ClaimSkipsExpiredPackages", testExpired},
		{"RemoveDeviceDropsItsPackagesAndBumpsTheVersion", testRemove},
		{"PublishRefusesBeyondTheLimits", testLimits},
		{"DeviceChangesAreRecordedBeforeTheyAreCommitted", testRecorded},
		{"ConcurrentClaimsNeverShareAPackage", testConcurrentClaims},
		{"ConcurrentDeviceChangesGetOneVersionEach", testConcurrentDevices},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.f(t, a)
		})
	}
}

var ctx = context.Background()

// pkg is a package that passed keydir.Check: the directory stores what
// it is given, so the suite needs no real KeyPackage (Check's tests use
// real ones).
func pkg(name string, notAfter time.Time) keydir.Package {
	ref := sha256.Sum256([]byte(name))
	return keydir.Package{Ref: ref[:], Data: []byte(name), NotAfter: notAfter}
}

func ptr[T any](v T) *T { return &v }

func testClaimOrder(t *testing.T, a Adapter) {
	d := a.Open(t, Options{})
	later := time.Now().Add(time.Hour)
	if _, ch, err := d.Publish(ctx, "alice", "phone", []keydir.Package{pkg("p1", later), pkg("p2", later)}, ptr(pkg("phone-last", later))); err != nil || !ch.Added || ch.List.Version != 1 {
		t.Fatalf("publish: %+v %v", ch, err)
	}
	st, ch, err := d.Publish(ctx, "alice", "laptop", []keydir.Package{pkg("l1", later), pkg("l1", later)}, nil)
	if err != nil || !ch.Added || ch.List.Version != 2 || st.Available != 1 || st.LastResort || !st.Low {
		t.Fatalf("publish laptop: %+v %+v %v", st, ch, err)
	}
	l, err := d.Devices(ctx, "alice")
	if err != nil || l.Version != 2 || len(l.Devices) != 2 || l.Devices[0].ID != "laptop" || l.Devices[1].ID != "phone" || l.Devices[0].AddedAt.IsZero() {
		t.Fatalf("devices: %+v %v", l, err)
	}
	// One-time packages in any order, each once; then the last resort,
	// kept.
	got := map[string]int{}
	for i := range 4 {
		v, claimed, err := d.Claim(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if v != 2 {
			t.Errorf("claim %d: version %d, want 2", i, v)
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
	st, err = d.Status(ctx, "alice", "phone")
	if err != nil || st.Available != 0 || !st.LastResort || !st.Low {
		t.Errorf("status after claims: %+v %v", st, err)
	}
	// A user without devices: version 0, nothing claimed.
	if v, got, err := d.Claim(ctx, "nobody"); err != nil || v != 0 || len(got) != 0 {
		t.Errorf("claim of a user without devices: %d %+v %v", v, got, err)
	}
}

func testExpired(t *testing.T, a Adapter) {
	now := time.Now()
	d := a.Open(t, Options{Now: func() time.Time { return now }})
	if _, _, err := d.Publish(ctx, "bob", "tab", []keydir.Package{pkg("old", now.Add(-time.Second)), pkg("new", now.Add(time.Hour))}, ptr(pkg("last", now.Add(-time.Minute)))); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"new", ""} {
		_, got, err := d.Claim(ctx, "bob")
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

func testRemove(t *testing.T, a Adapter) {
	d := a.Open(t, Options{})
	later := time.Now().Add(time.Hour)
	for _, dev := range []string{"a", "b"} {
		if _, _, err := d.Publish(ctx, "carol", dev, []keydir.Package{pkg(dev, later)}, ptr(pkg(dev+"-last", later))); err != nil {
			t.Fatal(err)
		}
	}
	ch, err := d.RemoveDevice(ctx, "carol", "a")
	if err != nil || !ch.Removed || ch.List.Version != 3 || len(ch.List.Devices) != 1 || ch.List.Devices[0].ID != "b" {
		t.Fatalf("remove: %+v %v", ch, err)
	}
	if _, err := d.RemoveDevice(ctx, "carol", "a"); !errors.Is(err, keydir.ErrNoDevice) {
		t.Errorf("second remove: %v", err)
	}
	if st, err := d.Status(ctx, "carol", "a"); err != nil || st.Available != 0 || st.LastResort {
		t.Errorf("status of the removed device: %+v %v", st, err)
	}
	v, got, err := d.Claim(ctx, "carol")
	if err != nil || v != 3 || len(got) != 1 || got[0].Device != "b" {
		t.Errorf("claim after remove: %+v %v", got, err)
	}
	// Publishing again for the removed device adds it back, as a new
	// version, without the packages it had.
	if _, ch, err := d.Publish(ctx, "carol", "a", []keydir.Package{pkg("a2", later)}, nil); err != nil || !ch.Added || ch.List.Version != 4 {
		t.Errorf("re-add: %+v %v", ch, err)
	}
	if st, err := d.Status(ctx, "carol", "a"); err != nil || st.Available != 1 || st.LastResort {
		t.Errorf("status of the re-added device: %+v %v", st, err)
	}
}

func testLimits(t *testing.T, a Adapter) {
	d := a.Open(t, Options{})
	later := time.Now().Add(time.Hour)
	var many []keydir.Package
	for i := range keydir.MaxPackagesPerDevice + 1 {
		many = append(many, pkg(fmt.Sprint(i), later))
	}
	if _, _, err := d.Publish(ctx, "dan", "x", many, nil); !errors.Is(err, keydir.ErrFull) {
		t.Errorf("too many packages: %v", err)
	}
	if st, err := d.Status(ctx, "dan", "x"); err != nil || st.Available != 0 {
		t.Errorf("a refused publication wrote: %+v %v", st, err)
	}
	if l, err := d.Devices(ctx, "dan"); err != nil || l.Version != 0 || len(l.Devices) != 0 {
		t.Errorf("a refused publication added its device: %+v %v", l, err)
	}
	for i := range keydir.MaxDevicesPerUser {
		if _, _, err := d.Publish(ctx, "dan", fmt.Sprint("d", i), nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := d.Publish(ctx, "dan", "onemore", nil, nil); !errors.Is(err, keydir.ErrFull) {
		t.Errorf("too many devices: %v", err)
	}
	if l, err := d.Devices(ctx, "dan"); err != nil || l.Version != keydir.MaxDevicesPerUser || len(l.Devices) != keydir.MaxDevicesPerUser {
		t.Errorf("devices after the refusal: version %d, %d devices, %v", l.Version, len(l.Devices), err)
	}
}

// recorder is a keydir.Recorder that keeps what it is given, or fails.
type recorder struct {
	mu   sync.Mutex
	got  []string
	fail error
}

func (r *recorder) Append(_ context.Context, user, device string, version uint64, added bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.got = append(r.got, fmt.Sprint(user, "/", device, " v", version, " added=", added))
	return nil
}

func (r *recorder) recorded() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

// testRecorded: each device added or removed is recorded once with the
// list's new version; a change the recorder refuses is not made.
func testRecorded(t *testing.T, a Adapter) {
	rec := &recorder{}
	d := a.Open(t, Options{Recorder: rec})
	later := time.Now().Add(time.Hour)
	for _, step := range []func() error{
		func() error {
			_, _, err := d.Publish(ctx, "alice", "phone", []keydir.Package{pkg("a", later)}, nil)
			return err
		},
		func() error {
			_, _, err := d.Publish(ctx, "alice", "phone", []keydir.Package{pkg("b", later)}, nil)
			return err
		}, // not a change
		func() error {
			_, _, err := d.Publish(ctx, "alice", "laptop", nil, ptr(pkg("c", later)))
			return err
		},
		func() error { _, err := d.RemoveDevice(ctx, "alice", "phone"); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"alice/phone v1 added=true", "alice/laptop v2 added=true", "alice/phone v3 added=false"}
	if got := rec.recorded(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("recorded %v, want %v", got, want)
	}
	rec.mu.Lock()
	rec.fail = errors.New("broker down")
	rec.mu.Unlock()
	if _, _, err := d.Publish(ctx, "alice", "tablet", []keydir.Package{pkg("t", later)}, nil); !errors.Is(err, rec.fail) {
		t.Errorf("publishing a new device with the recorder failing: %v", err)
	}
	if _, err := d.RemoveDevice(ctx, "alice", "laptop"); !errors.Is(err, rec.fail) {
		t.Errorf("removing with the recorder failing: %v", err)
	}
	l, err := d.Devices(ctx, "alice")
	if err != nil || len(l.Devices) != 1 || l.Devices[0].ID != "laptop" {
		t.Errorf("a change the recorder refused was made: %+v %v", l, err)
	}
	if st, err := d.Status(ctx, "alice", "tablet"); err != nil || st.Available != 0 {
		t.Errorf("the refused device's packages were kept: %+v %v", st, err)
	}
	// The next change gets the version after the last one made.
	rec.mu.Lock()
	rec.fail = nil
	rec.mu.Unlock()
	if _, ch, err := d.Publish(ctx, "alice", "tablet", nil, nil); err != nil || ch.List.Version <= 3 || len(ch.List.Devices) != 2 {
		t.Errorf("a change after the refused ones: %+v %v", ch, err)
	}
	if got := rec.recorded(); len(got) != 4 || got[3] != fmt.Sprintf("alice/tablet v%d added=true", mustDevices(t, d, "alice").Version) {
		t.Errorf("recorded %v", got)
	}
}

func mustDevices(t *testing.T, d Directory, user string) keydir.DeviceList {
	t.Helper()
	l, err := d.Devices(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// instances returns d and, if the adapter can, a peer over the same
// store: the directories that concurrent tests spread their calls over.
func instances(t *testing.T, a Adapter, o Options) []Directory {
	d := a.Open(t, o)
	if a.Peer == nil {
		return []Directory{d}
	}
	return []Directory{d, a.Peer(t, d, o)}
}

// testConcurrentClaims: many claimers at once, spread over the
// instances, and a publisher topping up meanwhile; every one-time
// package is handed out at most once, none is lost, and when none is
// left the last resort is handed out.
func testConcurrentClaims(t *testing.T, a Adapter) {
	ds := instances(t, a, Options{})
	later := time.Now().Add(time.Hour)
	const packages, claimers, rounds = 60, 32, 3
	var first []keydir.Package
	for i := range packages / 2 {
		first = append(first, pkg(fmt.Sprint("p", i), later))
	}
	if _, _, err := ds[0].Publish(ctx, "erin", "phone", first, ptr(pkg("last", later))); err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		seen = map[string]int{}
		wg   sync.WaitGroup
	)
	wg.Go(func() {
		var more []keydir.Package
		for i := packages / 2; i < packages; i++ {
			more = append(more, pkg(fmt.Sprint("p", i), later))
		}
		if _, _, err := ds[len(ds)-1].Publish(ctx, "erin", "phone", more, nil); err != nil {
			t.Error(err)
		}
	})
	for i := range claimers {
		d := ds[i%len(ds)]
		wg.Go(func() {
			for range rounds {
				v, got, err := d.Claim(ctx, "erin")
				if err != nil {
					t.Error(err)
					return
				}
				if v != 1 || len(got) != 1 {
					t.Errorf("claim: version %d, %d packages", v, len(got))
				}
				mu.Lock()
				for _, c := range got {
					seen[string(c.Data)]++
					if c.LastResort != (string(c.Data) == "last") {
						t.Errorf("%s: last resort %v", c.Data, c.LastResort)
					}
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
	if total != rounds*claimers {
		t.Errorf("%d packages handed out to %d claims", total, rounds*claimers)
	}
	// 96 claims of 60 packages: the last resort was handed out for the
	// claims the one-time packages could not serve.
	if seen["last"] != rounds*claimers-packages {
		t.Errorf("last resort handed out %d times, want %d", seen["last"], rounds*claimers-packages)
	}
	for _, d := range ds {
		st, err := d.Status(ctx, "erin", "phone")
		if err != nil || st.Available != 0 || !st.LastResort {
			t.Errorf("status %+v (%v): want every one-time package claimed, the last resort kept", st, err)
		}
	}
}

// testConcurrentDevices: devices added at once through every instance
// get one version each, 1 to n, each recorded once, and the list holds
// them all.
func testConcurrentDevices(t *testing.T, a Adapter) {
	rec := &recorder{}
	ds := instances(t, a, Options{Recorder: rec})
	later := time.Now().Add(time.Hour)
	const n = 12
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		versions = map[uint64]string{}
	)
	for i := range n {
		d := ds[i%len(ds)]
		dev := fmt.Sprint("dev", i)
		wg.Go(func() {
			_, ch, err := d.Publish(ctx, "frank", dev, []keydir.Package{pkg(dev, later)}, ptr(pkg(dev+"-last", later)))
			if err != nil || !ch.Added {
				t.Errorf("publish %s: %+v %v", dev, ch, err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if other, dup := versions[ch.List.Version]; dup {
				t.Errorf("%s and %s both made version %d", dev, other, ch.List.Version)
			}
			versions[ch.List.Version] = dev
			if uint64(len(ch.List.Devices)) != ch.List.Version {
				t.Errorf("version %d lists %d devices", ch.List.Version, len(ch.List.Devices))
			}
		})
	}
	wg.Wait()
	for v := uint64(1); v <= n; v++ {
		if versions[v] == "" {
			t.Errorf("no change made version %d: %v", v, versions)
		}
	}
	got := rec.recorded()
	if len(got) != n {
		t.Errorf("recorded %d changes, want %d: %v", len(got), n, got)
	}
	for v, dev := range versions {
		want := fmt.Sprintf("frank/%s v%d added=true", dev, v)
		found := false
		for _, g := range got {
			found = found || g == want
		}
		if !found {
			t.Errorf("%q not recorded: %v", want, got)
		}
	}
	// Every instance reads the same list, and claims from it: the first
	// claim gets every device's one-time package, the next their last
	// resorts.
	for i, d := range []Directory{ds[0], ds[len(ds)-1]} {
		l, err := d.Devices(ctx, "frank")
		if err != nil || l.Version != n || len(l.Devices) != n {
			t.Errorf("devices: version %d, %d devices, %v", l.Version, len(l.Devices), err)
		}
		v, claimed, err := d.Claim(ctx, "frank")
		if err != nil || v != n || len(claimed) != n {
			t.Fatalf("claim %d: version %d, %d packages, %v", i, v, len(claimed), err)
		}
		for _, c := range claimed {
			if c.LastResort != (i == 1) || string(c.Data) != c.Device+map[bool]string{true: "-last"}[i == 1] {
				t.Errorf("claim %d: %s from %s, last resort %v", i, c.Data, c.Device, c.LastResort)
			}
		}
	}
}

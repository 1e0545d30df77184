// Package keydir is the directory of MLS devices and KeyPackages: each
// user's versioned device list, each device's one-time KeyPackages and
// its last-resort one, and the atomic claim that hands a KeyPackage of
// every device of a user to whoever is adding the user to a group.
//
// A Directory is a Pebble database under the gateway's data directory.
// Claims and publications of one Directory are serialised by one lock
// and written in one synced batch, so two concurrent claims never get
// the same KeyPackage and a claim that returned survives a crash. The
// directory is the owner of this state, not a projection of the log:
// KeyPackages are short-lived public keys that devices re-publish, and
// a lost directory costs each device a top-up (devices re-publish when
// Status reports them low), never a message. Every change of a device list is
// recorded in the log (chat.devices, through a Recorder) before the
// directory commits it. A Pebble directory is one node's: several
// gateway nodes share the ScyllaDB adapter (keydir/scyllakeys) instead,
// and both adapters pass the conformance suite keydir/keydirtest (see
// README "Guarantees and decisions").
//
// A Directory is safe for concurrent use.
package keydir

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/parley-chat/parley/internal/mlswire"
	"github.com/parley-chat/parley/internal/pebblelog"
)

// Limits of the directory.
const (
	// MaxPackageBytes is the largest KeyPackage accepted.
	MaxPackageBytes = 8 << 10
	// MaxPackagesPerDevice is the most one-time KeyPackages a device
	// keeps in the directory; publishing beyond it is refused.
	MaxPackagesPerDevice = 100
	// MaxDevicesPerUser is the most devices a user has.
	MaxDevicesPerUser = 20
	// LowWater is the count of one-time KeyPackages below which a
	// device is told to top up.
	LowWater = 10
	// MaxLifetime is the longest lifetime a KeyPackage may declare.
	MaxLifetime = 90 * 24 * time.Hour
	// ClockSkew is how far in the future a KeyPackage's not_before may
	// be, for clients whose clocks run ahead.
	ClockSkew = 5 * time.Minute
	// Suite is the MLS cipher suite Parley's clients speak and the
	// directory accepts: MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519.
	Suite = mlswire.X25519AES128GCMSHA256Ed25519
)

// Errors of the directory. A refused KeyPackage's error wraps
// ErrRefused and says why.
var (
	// ErrRefused: a KeyPackage fails a check (malformed, bad signature,
	// wrong suite, identity or lifetime).
	ErrRefused = errors.New("key package refused")
	// ErrFull: the device has MaxPackagesPerDevice one-time packages,
	// or the user MaxDevicesPerUser devices.
	ErrFull = errors.New("key directory full")
	// ErrNoDevice: the user has no such device.
	ErrNoDevice = errors.New("no such device")
)

// Identity is the BasicCredential identity of user's device: "user/device".
// Neither a user id nor a device id can contain a slash, so the identity
// names exactly one device.
func Identity(user, device string) string { return user + "/" + device }

// Package is a checked KeyPackage.
type Package struct {
	// Ref is its KeyPackageRef.
	Ref []byte `json:"ref"`
	// Data is the MLSMessage that holds it, as published.
	Data     []byte    `json:"data"`
	NotAfter time.Time `json:"not_after"`
}

// Check parses a KeyPackage published by user's device and checks what
// the delivery service must: the framing and signature, the cipher
// suite (Suite), that the credential is a BasicCredential with identity
// Identity(user, device), and that its lifetime covers now, starts no
// later than ClockSkew from now and lasts at most MaxLifetime.
func Check(data []byte, user, device string, now time.Time) (Package, error) {
	if len(data) > MaxPackageBytes {
		return Package{}, fmt.Errorf("%w: %d bytes, at most %d", ErrRefused, len(data), MaxPackageBytes)
	}
	kp, err := mlswire.ParseKeyPackage(data)
	if err != nil {
		return Package{}, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	lt := kp.Lifetime
	switch {
	case kp.CipherSuite != Suite:
		return Package{}, fmt.Errorf("%w: cipher suite %d, this server accepts %d (MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)", ErrRefused, kp.CipherSuite, Suite)
	case kp.CredentialType != mlswire.CredentialBasic:
		return Package{}, fmt.Errorf("%w: credential type %d, want a basic credential", ErrRefused, kp.CredentialType)
	case string(kp.Identity) != Identity(user, device):
		return Package{}, fmt.Errorf("%w: credential identity %q, want %q", ErrRefused, kp.Identity, Identity(user, device))
	case !lt.NotAfter.After(now):
		return Package{}, fmt.Errorf("%w: expired at %s", ErrRefused, lt.NotAfter.Format(time.RFC3339))
	case lt.NotBefore.After(now.Add(ClockSkew)):
		return Package{}, fmt.Errorf("%w: not valid before %s", ErrRefused, lt.NotBefore.Format(time.RFC3339))
	case lt.NotAfter.Sub(lt.NotBefore) > MaxLifetime:
		return Package{}, fmt.Errorf("%w: a lifetime of %s, at most %s", ErrRefused, lt.NotAfter.Sub(lt.NotBefore), MaxLifetime)
	}
	return Package{Ref: kp.Ref, Data: data, NotAfter: lt.NotAfter}, nil
}

// Device is a device of a user's list.
type Device struct {
	ID      string    `json:"device_id"`
	AddedAt time.Time `json:"added_at"`
}

// DeviceList is a user's devices, sorted by id, and the list's version:
// it grows by one with every device added or removed.
type DeviceList struct {
	Version uint64   `json:"version"`
	Devices []Device `json:"devices"`
}

// Status is what a device has in the directory.
type Status struct {
	Device string `json:"device_id"`
	// Available is the count of one-time KeyPackages not yet claimed.
	Available int `json:"available"`
	// LastResort reports whether it has a last-resort KeyPackage.
	LastResort bool `json:"last_resort"`
	// Low is the top-up signal: Available is under LowWater.
	Low bool `json:"low"`
}

// Claimed is the KeyPackage claimed of one device.
type Claimed struct {
	Device string
	Data   []byte
	// LastResort reports that the device had no one-time KeyPackage left
	// and its last-resort one was handed out (and kept).
	LastResort bool
}

// DeviceChange is a device added to or removed from a user's list, as
// Publish and RemoveDevice report it.
type DeviceChange struct {
	Added, Removed bool
	List           DeviceList
}

// Recorder records a change of a user's device list elsewhere (the log:
// producers.DeviceWriter) before the directory commits it: added or
// removed device, and the list's version after the change. An error
// leaves the directory unchanged.
type Recorder interface {
	Append(ctx context.Context, user, device string, version uint64, added bool) error
}

// Directory is the key directory.
type Directory struct {
	db *pebble.DB
	// mu serialises every change: a claim reads and deletes under it.
	mu  sync.Mutex
	now func() time.Time
	rec Recorder
}

// Option configures a Directory.
type Option func(*Directory)

// WithRecorder has every change of a device list recorded by r before
// it is committed. Without it, changes are the directory's only.
func WithRecorder(r Recorder) Option { return func(d *Directory) { d.rec = r } }

// WithClock has the directory read the time from now (for tests of
// expiry). Default: time.Now.
func WithClock(now func() time.Time) Option { return func(d *Directory) { d.now = now } }

// record records a device change, if there is a recorder.
func (d *Directory) record(ctx context.Context, user, device string, version uint64, added bool) error {
	if d.rec == nil {
		return nil
	}
	if err := d.rec.Append(ctx, user, device, version, added); err != nil {
		return fmt.Errorf("recording the device change: %w", err)
	}
	return nil
}

// Open opens the directory in dir, creating it if needed.
func Open(dir string, log *slog.Logger, opts ...Option) (*Directory, error) {
	return open(dir, vfs.Default, log, opts...)
}

func open(dir string, fs vfs.FS, log *slog.Logger, opts ...Option) (*Directory, error) {
	db, err := pebble.Open(dir, &pebble.Options{FS: fs, FormatMajorVersion: pebble.FormatNewest, Logger: pebblelog.NewLogger(log)})
	if err != nil {
		return nil, fmt.Errorf("opening key directory: %w", err)
	}
	d := &Directory{db: db, now: time.Now}
	for _, o := range opts {
		o(d)
	}
	return d, nil
}

// Close closes the directory.
func (d *Directory) Close() error { return d.db.Close() }

// Keys: a user's device list, and per device its one-time packages (by
// ref) and its last-resort package. User and device ids hold no NUL.
func listKey(user string) []byte { return []byte("v\x00" + user) }
func packagePrefix(user, device string) []byte {
	return []byte("k\x00" + user + "\x00" + device + "\x00")
}
func lastResortKey(user, device string) []byte { return []byte("l\x00" + user + "\x00" + device) }

func (d *Directory) list(user string) (DeviceList, error) {
	var l DeviceList
	v, closer, err := d.db.Get(listKey(user))
	if errors.Is(err, pebble.ErrNotFound) {
		return l, nil
	}
	if err != nil {
		return l, fmt.Errorf("reading device list: %w", err)
	}
	defer closer.Close()
	if err := json.Unmarshal(v, &l); err != nil {
		return l, fmt.Errorf("decoding device list: %w", err)
	}
	return l, nil
}

func putList(b *pebble.Batch, user string, l DeviceList) error {
	v, err := json.Marshal(l)
	if err != nil {
		return err
	}
	return b.Set(listKey(user), v, nil)
}

// Devices returns user's device list.
func (d *Directory) Devices(_ context.Context, user string) (DeviceList, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.list(user)
}

// Publish adds one-time KeyPackages and, if lastResort is not nil,
// replaces the last-resort KeyPackage of user's device, adding the
// device to the user's list if it is new. The packages must have passed
// Check for the same user and device. A package already there (same
// ref) is kept once. A new device is recorded (WithRecorder) before
// anything is committed.
func (d *Directory) Publish(ctx context.Context, user, device string, pkgs []Package, lastResort *Package) (Status, DeviceChange, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	l, err := d.list(user)
	if err != nil {
		return Status{}, DeviceChange{}, err
	}
	b := d.db.NewBatch()
	defer b.Close()
	var change DeviceChange
	if _, ok := slices.BinarySearchFunc(l.Devices, device, byID); !ok {
		if len(l.Devices) >= MaxDevicesPerUser {
			return Status{}, DeviceChange{}, fmt.Errorf("%w: %d devices, at most %d", ErrFull, len(l.Devices), MaxDevicesPerUser)
		}
		l.Devices = append(l.Devices, Device{ID: device, AddedAt: d.now().UTC()})
		slices.SortFunc(l.Devices, func(a, b Device) int { return cmpString(a.ID, b.ID) })
		l.Version++
		if err := putList(b, user, l); err != nil {
			return Status{}, DeviceChange{}, err
		}
		change = DeviceChange{Added: true, List: l}
	}
	have, err := d.refs(user, device)
	if err != nil {
		return Status{}, DeviceChange{}, err
	}
	for _, p := range pkgs {
		ref := hex.EncodeToString(p.Ref)
		if _, dup := have[ref]; dup {
			continue
		}
		if len(have) >= MaxPackagesPerDevice {
			return Status{}, DeviceChange{}, fmt.Errorf("%w: a device keeps at most %d key packages", ErrFull, MaxPackagesPerDevice)
		}
		have[ref] = struct{}{}
		v, err := json.Marshal(p)
		if err != nil {
			return Status{}, DeviceChange{}, err
		}
		if err := b.Set(append(packagePrefix(user, device), ref...), v, nil); err != nil {
			return Status{}, DeviceChange{}, err
		}
	}
	if lastResort != nil {
		v, err := json.Marshal(lastResort)
		if err != nil {
			return Status{}, DeviceChange{}, err
		}
		if err := b.Set(lastResortKey(user, device), v, nil); err != nil {
			return Status{}, DeviceChange{}, err
		}
	}
	if change.Added {
		if err := d.record(ctx, user, device, l.Version, true); err != nil {
			return Status{}, DeviceChange{}, err
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return Status{}, DeviceChange{}, fmt.Errorf("writing key packages: %w", err)
	}
	st, err := d.status(user, device)
	return st, change, err
}

func byID(d Device, id string) int { return cmpString(d.ID, id) }

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// refs returns the refs (hex) of device's one-time packages.
func (d *Directory) refs(user, device string) (map[string]struct{}, error) {
	prefix := packagePrefix(user, device)
	it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upper(prefix)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	refs := make(map[string]struct{})
	for ok := it.First(); ok; ok = it.Next() {
		refs[string(bytes.TrimPrefix(it.Key(), prefix))] = struct{}{}
	}
	return refs, it.Error()
}

// upper is the smallest key above every key with prefix.
func upper(prefix []byte) []byte {
	u := bytes.Clone(prefix)
	u[len(u)-1]++
	return u
}

// Status returns what user's device has in the directory.
func (d *Directory) Status(_ context.Context, user, device string) (Status, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.status(user, device)
}

func (d *Directory) status(user, device string) (Status, error) {
	refs, err := d.refs(user, device)
	if err != nil {
		return Status{}, err
	}
	_, closer, err := d.db.Get(lastResortKey(user, device))
	switch {
	case err == nil:
		closer.Close()
	case !errors.Is(err, pebble.ErrNotFound):
		return Status{}, err
	}
	return Status{Device: device, Available: len(refs), LastResort: err == nil, Low: len(refs) < LowWater}, nil
}

// Claim hands out one KeyPackage of every device of user: a one-time
// one, which is deleted, or else the device's last-resort one, which is
// kept. Expired packages are deleted and never handed out. A device
// with neither is left out. Claims are atomic: no one-time KeyPackage is
// ever handed out twice. version is the version of the device list the
// claim was made from.
func (d *Directory) Claim(_ context.Context, user string) (version uint64, claimed []Claimed, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	l, err := d.list(user)
	if err != nil {
		return 0, nil, err
	}
	now := d.now()
	b := d.db.NewBatch()
	defer b.Close()
	var out []Claimed
	for _, dev := range l.Devices {
		c, ok, err := d.claimOne(b, user, dev.ID, now)
		if err != nil {
			return 0, nil, err
		}
		if ok {
			out = append(out, c)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return 0, nil, fmt.Errorf("writing claims: %w", err)
	}
	return l.Version, out, nil
}

func (d *Directory) claimOne(b *pebble.Batch, user, device string, now time.Time) (Claimed, bool, error) {
	prefix := packagePrefix(user, device)
	it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upper(prefix)})
	if err != nil {
		return Claimed{}, false, err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		var p Package
		if err := json.Unmarshal(it.Value(), &p); err != nil {
			return Claimed{}, false, fmt.Errorf("decoding key package: %w", err)
		}
		if err := b.Delete(bytes.Clone(it.Key()), nil); err != nil {
			return Claimed{}, false, err
		}
		if p.NotAfter.After(now) {
			return Claimed{Device: device, Data: p.Data}, true, nil
		}
	}
	if err := it.Error(); err != nil {
		return Claimed{}, false, err
	}
	v, closer, err := d.db.Get(lastResortKey(user, device))
	if errors.Is(err, pebble.ErrNotFound) {
		return Claimed{}, false, nil
	}
	if err != nil {
		return Claimed{}, false, err
	}
	defer closer.Close()
	var p Package
	if err := json.Unmarshal(v, &p); err != nil {
		return Claimed{}, false, fmt.Errorf("decoding key package: %w", err)
	}
	if !p.NotAfter.After(now) {
		return Claimed{}, false, nil
	}
	return Claimed{Device: device, Data: p.Data, LastResort: true}, true, nil
}

// RemoveDevice removes user's device and every KeyPackage it has; the
// change is recorded (WithRecorder) before it is committed.
func (d *Directory) RemoveDevice(ctx context.Context, user, device string) (DeviceChange, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	l, err := d.list(user)
	if err != nil {
		return DeviceChange{}, err
	}
	i, ok := slices.BinarySearchFunc(l.Devices, device, byID)
	if !ok {
		return DeviceChange{}, fmt.Errorf("%w: %s", ErrNoDevice, device)
	}
	l.Devices = slices.Delete(slices.Clone(l.Devices), i, i+1)
	l.Version++
	b := d.db.NewBatch()
	defer b.Close()
	prefix := packagePrefix(user, device)
	if err := b.DeleteRange(prefix, upper(prefix), nil); err != nil {
		return DeviceChange{}, err
	}
	if err := b.Delete(lastResortKey(user, device), nil); err != nil {
		return DeviceChange{}, err
	}
	if err := putList(b, user, l); err != nil {
		return DeviceChange{}, err
	}
	if err := d.record(ctx, user, device, l.Version, false); err != nil {
		return DeviceChange{}, err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return DeviceChange{}, fmt.Errorf("removing device: %w", err)
	}
	return DeviceChange{Removed: true, List: l}, nil
}

// Package scyllakeys is the production adapter of the key directory: the
// directory of internal/keydir on ScyllaDB (or Cassandra) through gocql,
// shared by every gateway node, so that any node serves any key request
// behind a load balancer. It passes the same conformance suite
// (keydir/keydirtest) as the embedded Pebble adapter, keydir.Directory,
// and the suite runs its concurrent claims and device changes through two
// directories over one keyspace, as two gateways would.
//
// # Atomicity across nodes
//
// Its tables are in schemas/cql/0005_key_directory.cql, created by the
// shared migrations (scyllastore.Connect). Atomicity comes from
// lightweight transactions, and only INSERT ... IF NOT EXISTS, on rows
// nothing writes without one:
//
//   - A claim of a one-time KeyPackage inserts a claim row for its ref IF
//     NOT EXISTS; the claimer whose insert applies owns the package and
//     deletes it, every other claimer tries the next one. Claim rows are
//     kept, so a KeyPackage is handed out at most once, ever. A device
//     with none left hands out its last-resort package, which is kept.
//   - A change of a user's device list (a device added by its first
//     publication, or removed) is proposed as the row of the next
//     version IF NOT EXISTS: one node owns that version, the others read
//     again and propose the one after. The owner records the change in
//     chat.devices (the Recorder) and then commits it by inserting its
//     outcome IF NOT EXISTS: the event is in the log before the change is
//     in the directory, as with Pebble. A change the log refused is
//     aborted; so is a proposal another node has waited AbandonAfter on
//     (its owner died): the outcome row decides between them, and the
//     next change takes the same version again, so versions have no
//     gaps. Reads use the newest committed version.
//
// # What is weaker than Pebble
//
// Pebble writes a publication in one batch; here a publication that adds
// a device commits the device first and writes its KeyPackages after, so
// a node that dies between the two leaves a listed device without
// packages (its next Status says Low and it tops up). The limit of
// keydir.MaxPackagesPerDevice is checked against a read, so concurrent
// publications of one device through several nodes may exceed it by the
// size of one publication. A change aborted after its event was recorded
// (the log was slow past AbandonAfter/2, or the node died in between)
// leaves an event in chat.devices that the directory does not have, and
// the next change records the same version again, with other devices: a
// version may appear in the log more than once, and the directory's list
// is the one that counts (schemas/asyncapi.yaml says so). With Pebble a
// node dying between recording and committing leaves such an event too.
//
// A Directory is safe for concurrent use.
package scyllakeys

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/gocql/gocql"

	"github.com/parley-chat/parley/internal/keydir"
	"github.com/parley-chat/parley/projections/history/scyllastore"
)

// DefaultAbandonAfter is how long a node waits on another node's
// proposed device change before it aborts it.
const DefaultAbandonAfter = 10 * time.Second

// Statements. The session is bound to the keyspace.
const (
	selectVersions = `SELECT version, attempt, kind, devices, committed
		FROM key_device_versions WHERE user_id = ?`
	insertProposal = `INSERT INTO key_device_versions
		(user_id, version, attempt, kind, devices, device_id, added)
		VALUES (?, ?, ?, 0, ?, ?, ?) IF NOT EXISTS`
	insertOutcome = `INSERT INTO key_device_versions
		(user_id, version, attempt, kind, committed)
		VALUES (?, ?, ?, 1, ?) IF NOT EXISTS`
	selectPackages = `SELECT ref, data, not_after FROM key_packages
		WHERE user_id = ? AND device_id = ?`
	insertPackage = `INSERT INTO key_packages (user_id, device_id, ref, data, not_after)
		VALUES (?, ?, ?, ?, ?)`
	deletePackage    = `DELETE FROM key_packages WHERE user_id = ? AND device_id = ? AND ref = ?`
	deletePackages   = `DELETE FROM key_packages WHERE user_id = ? AND device_id = ?`
	selectClaims     = `SELECT ref FROM key_package_claims WHERE user_id = ? AND device_id = ?`
	insertClaim      = `INSERT INTO key_package_claims (user_id, device_id, ref, claimed_at) VALUES (?, ?, ?, ?) IF NOT EXISTS`
	selectLast       = `SELECT data, not_after FROM key_last_resort WHERE user_id = ? AND device_id = ?`
	upsertLast       = `INSERT INTO key_last_resort (user_id, device_id, data, not_after) VALUES (?, ?, ?, ?)`
	deleteLast       = `DELETE FROM key_last_resort WHERE user_id = ? AND device_id = ?`
	maxBatchBytes    = 64 << 10
	pollFirst        = 5 * time.Millisecond
	pollMost         = 200 * time.Millisecond
	outcomeKind      = 1
	versionsPageSize = 16
	proposalKind     = 0
)

// Directory is the key directory on ScyllaDB.
type Directory struct {
	sess         *gocql.Session
	own          bool // Close closes sess
	now          func() time.Time
	rec          keydir.Recorder
	abandonAfter time.Duration
}

// Option configures a Directory.
type Option func(*Directory)

// WithRecorder has every change of a device list recorded by r before
// it is committed.
func WithRecorder(r keydir.Recorder) Option { return func(d *Directory) { d.rec = r } }

// WithClock has the directory read the time from now. Default: time.Now.
func WithClock(now func() time.Time) Option { return func(d *Directory) { d.now = now } }

// WithAbandonAfter sets how long a node waits on another node's
// proposed device change before aborting it. Default:
// DefaultAbandonAfter. The owner of a change gives its Recorder half of
// it.
func WithAbandonAfter(t time.Duration) Option { return func(d *Directory) { d.abandonAfter = t } }

// Open connects to the cluster (creating the keyspace and applying the
// migrations if needed, see scyllastore.Connect) and returns a directory
// on it. It does not retry: the caller does, with backoff.
func Open(ctx context.Context, cfg scyllastore.Config, opts ...Option) (*Directory, error) {
	sess, err := scyllastore.Connect(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("key directory: %w", err)
	}
	d := New(sess, opts...)
	d.own = true
	return d, nil
}

// New returns a directory on sess, a session bound to a keyspace that
// scyllastore.Connect migrated. Close leaves sess open.
func New(sess *gocql.Session, opts ...Option) *Directory {
	d := &Directory{sess: sess, now: time.Now, abandonAfter: DefaultAbandonAfter}
	for _, o := range opts {
		o(d)
	}
	return d
}

// Close closes the directory's session if Open made it.
func (d *Directory) Close() error {
	if d.own {
		d.sess.Close()
	}
	return nil
}

// Ping reads the device list of no one: it succeeds when enough replicas
// answer.
func (d *Directory) Ping(ctx context.Context) error {
	_, err := d.read(ctx, "")
	return err
}

// version is the state of a user's device list: the current (newest
// committed) list, and where the next change goes.
type version struct {
	list DeviceList
	// next is the version and attempt of the next proposal.
	next, attempt int64
	// pending, when set, is a proposal without outcome at the top.
	pending bool
}

// DeviceList is keydir.DeviceList.
type DeviceList = keydir.DeviceList

// read reads the current list of user and the state of its newest
// proposal.
func (d *Directory) read(ctx context.Context, user string) (version, error) {
	// Small pages: the current list is almost always in the first rows
	// (newest first), and a user's history of changes can be long.
	it := d.sess.Query(selectVersions, user).WithContext(ctx).Idempotent(true).PageSize(versionsPageSize).Iter()
	var (
		ver, attempt int64
		kind         int
		devices      []byte
		committed    bool
		out          version
		first        = true
		top          struct{ ver, attempt int64 }
		outcome      = map[[2]int64]bool{}
		found        bool
	)
	out.next = 1
	for it.Scan(&ver, &attempt, &kind, &devices, &committed) {
		k := [2]int64{ver, attempt}
		if first {
			first = false
			top.ver, top.attempt = ver, attempt
			switch {
			case kind == proposalKind:
				out.pending = true
			case committed:
				out.next, out.attempt = ver+1, 0
			default:
				out.next, out.attempt = ver, attempt+1
			}
		}
		if kind == outcomeKind {
			outcome[k] = committed
			continue
		}
		if !outcome[k] {
			continue
		}
		if err := json.Unmarshal(devices, &out.list); err != nil {
			it.Close()
			return version{}, fmt.Errorf("decoding the device list of %s, version %d: %w", user, ver, err)
		}
		found = true
		break
	}
	if err := it.Close(); err != nil {
		return version{}, fmt.Errorf("reading the device list: %w", err)
	}
	if !found {
		out.list = DeviceList{}
	}
	if out.pending {
		// A pending proposal at the top: the next change waits on it.
		out.next, out.attempt = top.ver, top.attempt
	}
	return out, nil
}

// Devices returns user's device list.
func (d *Directory) Devices(ctx context.Context, user string) (DeviceList, error) {
	v, err := d.read(ctx, user)
	return v.list, err
}

// change makes a change of user's device list: mutate returns the new
// list, or ok false for no change. The change is proposed, recorded and
// committed as the package doc says; a lost race reads again.
func (d *Directory) change(ctx context.Context, user, device string, added bool, mutate func(DeviceList) (DeviceList, bool, error)) (DeviceChange, error) {
	var (
		waiting    [2]int64 // the pending proposal waited on
		waitedFrom time.Time
		poll       = pollFirst
	)
	for {
		v, err := d.read(ctx, user)
		if err != nil {
			return DeviceChange{}, err
		}
		if v.pending {
			at := [2]int64{v.next, v.attempt}
			if at != waiting {
				waiting, waitedFrom, poll = at, time.Now(), pollFirst
			}
			if time.Since(waitedFrom) >= d.abandonAfter {
				// Its owner is gone: abort it (unless it commits first).
				if _, _, err := d.outcome(ctx, user, at[0], at[1], false); err != nil {
					return DeviceChange{}, err
				}
				continue
			}
			if err := wait(ctx, poll); err != nil {
				return DeviceChange{}, err
			}
			poll = min(2*poll, pollMost)
			continue
		}
		l, ok, err := mutate(v.list)
		if err != nil || !ok {
			return DeviceChange{List: v.list}, err
		}
		l.Version = uint64(v.next)
		data, err := json.Marshal(l)
		if err != nil {
			return DeviceChange{}, err
		}
		applied, err := d.cas(ctx, insertProposal, user, v.next, v.attempt, data, device, added)
		if err != nil {
			return DeviceChange{}, fmt.Errorf("proposing a device change: %w", err)
		}
		if !applied {
			continue // another node's change took this version
		}
		var recErr error
		if d.rec != nil {
			rctx, cancel := context.WithTimeout(ctx, d.abandonAfter/2)
			recErr = d.rec.Append(rctx, user, device, l.Version, added)
			cancel()
		}
		// The outcome is written even if ctx ended, so that no other node
		// waits on this proposal.
		octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.abandonAfter/2)
		_, committed, err := d.outcome(octx, user, v.next, v.attempt, recErr == nil)
		cancel()
		switch {
		case recErr != nil:
			return DeviceChange{}, fmt.Errorf("recording the device change: %w", recErr)
		case err != nil:
			return DeviceChange{}, fmt.Errorf("committing the device change: %w", err)
		case !committed:
			return DeviceChange{}, fmt.Errorf("device change of %s at version %d aborted by another node after waiting %s", user, l.Version, d.abandonAfter)
		}
		return DeviceChange{Added: added, Removed: !added, List: l}, nil
	}
}

// DeviceChange is keydir.DeviceChange.
type DeviceChange = keydir.DeviceChange

// outcome inserts the outcome of a proposal IF NOT EXISTS and returns
// whether this insert decided it, and the decided outcome.
func (d *Directory) outcome(ctx context.Context, user string, ver, attempt int64, committed bool) (applied, decided bool, err error) {
	prev := map[string]any{}
	applied, err = d.sess.Query(insertOutcome, user, ver, attempt, committed).WithContext(ctx).MapScanCAS(prev)
	if err != nil {
		return false, false, fmt.Errorf("deciding a device change: %w", err)
	}
	if applied {
		return true, committed, nil
	}
	c, _ := prev["committed"].(bool)
	return false, c, nil
}

func (d *Directory) cas(ctx context.Context, stmt string, args ...any) (bool, error) {
	return d.sess.Query(stmt, args...).WithContext(ctx).MapScanCAS(map[string]any{})
}

func wait(ctx context.Context, t time.Duration) error {
	timer := time.NewTimer(t)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

func byID(d keydir.Device, id string) int {
	switch {
	case d.ID < id:
		return -1
	case d.ID > id:
		return 1
	}
	return 0
}

// Publish adds one-time KeyPackages and, if lastResort is not nil,
// replaces the last-resort KeyPackage of user's device, adding the
// device to the user's list if it is new (recorded, then committed,
// before any package is written). The packages must have passed
// keydir.Check for the same user and device. A package already there,
// or ever claimed, is kept once, or not again.
func (d *Directory) Publish(ctx context.Context, user, device string, pkgs []keydir.Package, lastResort *keydir.Package) (keydir.Status, DeviceChange, error) {
	v, err := d.read(ctx, user)
	if err != nil {
		return keydir.Status{}, DeviceChange{}, err
	}
	have, claimed, err := d.refs(ctx, user, device)
	if err != nil {
		return keydir.Status{}, DeviceChange{}, err
	}
	var fresh []keydir.Package
	for _, p := range pkgs {
		ref := string(p.Ref)
		if _, dup := have[ref]; dup {
			continue
		}
		if _, gone := claimed[ref]; gone {
			continue
		}
		if len(have) >= keydir.MaxPackagesPerDevice {
			return keydir.Status{}, DeviceChange{}, fmt.Errorf("%w: a device keeps at most %d key packages", keydir.ErrFull, keydir.MaxPackagesPerDevice)
		}
		have[ref] = struct{}{}
		fresh = append(fresh, p)
	}
	var change DeviceChange
	if _, listed := slices.BinarySearchFunc(v.list.Devices, device, byID); !listed || v.pending {
		change, err = d.change(ctx, user, device, true, func(l DeviceList) (DeviceList, bool, error) {
			if _, ok := slices.BinarySearchFunc(l.Devices, device, byID); ok {
				return l, false, nil
			}
			if len(l.Devices) >= keydir.MaxDevicesPerUser {
				return l, false, fmt.Errorf("%w: %d devices, at most %d", keydir.ErrFull, len(l.Devices), keydir.MaxDevicesPerUser)
			}
			devs := append(slices.Clone(l.Devices), keydir.Device{ID: device, AddedAt: d.now().UTC()})
			slices.SortFunc(devs, func(a, b keydir.Device) int { return byID(a, b.ID) })
			return DeviceList{Devices: devs}, true, nil
		})
		if err != nil {
			return keydir.Status{}, DeviceChange{}, err
		}
		if !change.Added {
			change = DeviceChange{}
		}
	}
	if err := d.writePackages(ctx, user, device, fresh); err != nil {
		return keydir.Status{}, DeviceChange{}, err
	}
	if lastResort != nil {
		if err := d.sess.Query(upsertLast, user, device, lastResort.Data, lastResort.NotAfter).WithContext(ctx).Idempotent(true).Exec(); err != nil {
			return keydir.Status{}, DeviceChange{}, fmt.Errorf("writing the last-resort key package: %w", err)
		}
	}
	st, err := d.Status(ctx, user, device)
	return st, change, err
}

// writePackages writes pkgs as single-partition unlogged batches of at
// most maxBatchBytes.
func (d *Directory) writePackages(ctx context.Context, user, device string, pkgs []keydir.Package) error {
	for len(pkgs) > 0 {
		b := d.sess.Batch(gocql.UnloggedBatch).WithContext(ctx)
		size := 0
		for len(pkgs) > 0 && (size == 0 || size+len(pkgs[0].Data) <= maxBatchBytes) {
			p := pkgs[0]
			pkgs = pkgs[1:]
			size += len(p.Data)
			b.Query(insertPackage, user, device, p.Ref, p.Data, p.NotAfter)
		}
		if err := b.Exec(); err != nil {
			return fmt.Errorf("writing key packages: %w", err)
		}
	}
	return nil
}

// refs returns the refs of device's one-time packages and of its claimed
// ones.
func (d *Directory) refs(ctx context.Context, user, device string) (have, claimed map[string]struct{}, err error) {
	have, claimed = map[string]struct{}{}, map[string]struct{}{}
	var ref []byte
	it := d.sess.Query(selectClaims, user, device).WithContext(ctx).Idempotent(true).Iter()
	for it.Scan(&ref) {
		claimed[string(ref)] = struct{}{}
	}
	if err := it.Close(); err != nil {
		return nil, nil, fmt.Errorf("reading claims: %w", err)
	}
	it = d.sess.Query(selectPackages, user, device).WithContext(ctx).Idempotent(true).Iter()
	var (
		data     []byte
		notAfter time.Time
	)
	for it.Scan(&ref, &data, &notAfter) {
		if _, gone := claimed[string(ref)]; !gone {
			have[string(ref)] = struct{}{}
		}
	}
	if err := it.Close(); err != nil {
		return nil, nil, fmt.Errorf("reading key packages: %w", err)
	}
	return have, claimed, nil
}

// Status returns what user's device has in the directory.
func (d *Directory) Status(ctx context.Context, user, device string) (keydir.Status, error) {
	have, _, err := d.refs(ctx, user, device)
	if err != nil {
		return keydir.Status{}, err
	}
	var (
		data     []byte
		notAfter time.Time
	)
	err = d.sess.Query(selectLast, user, device).WithContext(ctx).Idempotent(true).Scan(&data, &notAfter)
	if err != nil && !errors.Is(err, gocql.ErrNotFound) {
		return keydir.Status{}, fmt.Errorf("reading the last-resort key package: %w", err)
	}
	return keydir.Status{Device: device, Available: len(have), LastResort: err == nil, Low: len(have) < keydir.LowWater}, nil
}

// Claim hands out one KeyPackage of every device of user: a one-time
// one, claimed IF NOT EXISTS and then deleted, or else the device's
// last-resort one, which is kept. Expired packages are deleted and never
// handed out. A device with neither is left out. version is the version
// of the device list the claim was made from.
func (d *Directory) Claim(ctx context.Context, user string) (uint64, []keydir.Claimed, error) {
	v, err := d.read(ctx, user)
	if err != nil {
		return 0, nil, err
	}
	now := d.now()
	var out []keydir.Claimed
	for _, dev := range v.list.Devices {
		c, ok, err := d.claimOne(ctx, user, dev.ID, now)
		if err != nil {
			return 0, nil, err
		}
		if ok {
			out = append(out, c)
		}
	}
	return v.list.Version, out, nil
}

func (d *Directory) claimOne(ctx context.Context, user, device string, now time.Time) (keydir.Claimed, bool, error) {
	type row struct {
		ref, data []byte
		notAfter  time.Time
	}
	var rows []row
	it := d.sess.Query(selectPackages, user, device).WithContext(ctx).Idempotent(true).Iter()
	for {
		var r row
		if !it.Scan(&r.ref, &r.data, &r.notAfter) {
			break
		}
		rows = append(rows, r)
	}
	if err := it.Close(); err != nil {
		return keydir.Claimed{}, false, fmt.Errorf("reading key packages: %w", err)
	}
	for _, r := range rows {
		if r.notAfter.After(now) {
			applied, err := d.cas(ctx, insertClaim, user, device, r.ref, now)
			if err != nil {
				return keydir.Claimed{}, false, fmt.Errorf("claiming key package %s: %w", hex.EncodeToString(r.ref), err)
			}
			if !applied {
				continue // another claimer has it
			}
		}
		if err := d.sess.Query(deletePackage, user, device, r.ref).WithContext(ctx).Idempotent(true).Exec(); err != nil {
			return keydir.Claimed{}, false, fmt.Errorf("deleting key package: %w", err)
		}
		if r.notAfter.After(now) {
			return keydir.Claimed{Device: device, Data: bytes.Clone(r.data)}, true, nil
		}
	}
	var (
		data     []byte
		notAfter time.Time
	)
	err := d.sess.Query(selectLast, user, device).WithContext(ctx).Idempotent(true).Scan(&data, &notAfter)
	if errors.Is(err, gocql.ErrNotFound) {
		return keydir.Claimed{}, false, nil
	}
	if err != nil {
		return keydir.Claimed{}, false, fmt.Errorf("reading the last-resort key package: %w", err)
	}
	if !notAfter.After(now) {
		return keydir.Claimed{}, false, nil
	}
	return keydir.Claimed{Device: device, Data: data, LastResort: true}, true, nil
}

// RemoveDevice removes user's device (recorded, then committed) and
// then every KeyPackage it has.
func (d *Directory) RemoveDevice(ctx context.Context, user, device string) (DeviceChange, error) {
	change, err := d.change(ctx, user, device, false, func(l DeviceList) (DeviceList, bool, error) {
		i, ok := slices.BinarySearchFunc(l.Devices, device, byID)
		if !ok {
			return l, false, fmt.Errorf("%w: %s", keydir.ErrNoDevice, device)
		}
		return DeviceList{Devices: slices.Delete(slices.Clone(l.Devices), i, i+1)}, true, nil
	})
	if err != nil {
		return DeviceChange{}, err
	}
	for _, stmt := range []string{deletePackages, deleteLast} {
		if err := d.sess.Query(stmt, user, device).WithContext(ctx).Idempotent(true).Exec(); err != nil {
			return DeviceChange{}, fmt.Errorf("removing the device's key packages: %w", err)
		}
	}
	return change, nil
}

// The key directory of a gateway: Pebble or ScyllaDB behind one type.

package app

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/parley-chat/parley/gateway"
	"github.com/parley-chat/parley/internal/keydir"
	"github.com/parley-chat/parley/internal/keydir/scyllakeys"
)

// errKeysUnavailable is returned by a key directory still connecting.
var errKeysUnavailable = errors.New("key directory not connected yet")

// keyStore is what the gateway serves keys from, and closes.
type keyStore interface {
	gateway.KeyDirectory
	Close() error
}

// keyDirectory is the key directory of a gateway: Pebble under the data
// dir (that node's alone), or ScyllaDB when PARLEY_SCYLLA_HOSTS is set,
// shared by every gateway node, so that any node serves any key request.
// A ScyllaDB that is unreachable at start does not stop the process: see
// lazy.
type keyDirectory struct {
	*lazy[keyStore]
}

var _ gateway.KeyDirectory = (*keyDirectory)(nil)

// openKeys opens the configured directory, recording device changes with
// rec. For ScyllaDB it returns at once and connects in the background
// until ctx is done.
func openKeys(ctx context.Context, cfg Config, log *slog.Logger, wg *sync.WaitGroup, rec keydir.Recorder) (*keyDirectory, error) {
	k := &keyDirectory{newLazy[keyStore](errKeysUnavailable)}
	if len(cfg.ScyllaHosts) == 0 {
		d, err := keydir.Open(filepath.Join(cfg.DataDir, "keys"), log, keydir.WithRecorder(rec))
		if err != nil {
			return nil, err
		}
		k.set(d)
		return k, nil
	}
	sc, err := scyllaConfig(cfg, cfg.ScyllaKeyspace, log)
	if err != nil {
		return nil, err
	}
	k.connect(ctx, wg, log.With("hosts", cfg.ScyllaHosts, "keyspace", cfg.ScyllaKeyspace), func(ctx context.Context) (keyStore, error) {
		return scyllakeys.Open(ctx, sc, scyllakeys.WithRecorder(rec))
	})
	return k, nil
}

// Ready is the /readyz check: connected, and answering when it can say.
func (k *keyDirectory) Ready(ctx context.Context) error {
	d, err := k.get()
	if err != nil {
		return err
	}
	if p, ok := d.(interface{ Ping(context.Context) error }); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (k *keyDirectory) Publish(ctx context.Context, user, device string, pkgs []keydir.Package, lastResort *keydir.Package) (keydir.Status, keydir.DeviceChange, error) {
	d, err := k.get()
	if err != nil {
		return keydir.Status{}, keydir.DeviceChange{}, err
	}
	return d.Publish(ctx, user, device, pkgs, lastResort)
}

func (k *keyDirectory) Status(ctx context.Context, user, device string) (keydir.Status, error) {
	d, err := k.get()
	if err != nil {
		return keydir.Status{}, err
	}
	return d.Status(ctx, user, device)
}

func (k *keyDirectory) Claim(ctx context.Context, user string) (uint64, []keydir.Claimed, error) {
	d, err := k.get()
	if err != nil {
		return 0, nil, err
	}
	return d.Claim(ctx, user)
}

func (k *keyDirectory) Devices(ctx context.Context, user string) (keydir.DeviceList, error) {
	d, err := k.get()
	if err != nil {
		return keydir.DeviceList{}, err
	}
	return d.Devices(ctx, user)
}

func (k *keyDirectory) RemoveDevice(ctx context.Context, user, device string) (keydir.DeviceChange, error) {
	d, err := k.get()
	if err != nil {
		return keydir.DeviceChange{}, err
	}
	return d.RemoveDevice(ctx, user, device)
}

// The key directory of end-to-end encryption over HTTP: devices publish
// MLS KeyPackages, and whoever adds a user to an encrypted conversation
// claims one of each of the user's devices.

package gateway

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/parley-chat/parley/internal/keydir"
	"github.com/parley-chat/parley/schemas"
)

// KeyDirectory holds devices and their KeyPackages (a *keydir.Directory,
// or a *scyllakeys.Directory shared by every gateway node).
// Claim must be atomic: two concurrent claims never get the same
// one-time KeyPackage.
type KeyDirectory interface {
	Publish(ctx context.Context, user, device string, pkgs []keydir.Package, lastResort *keydir.Package) (keydir.Status, keydir.DeviceChange, error)
	Status(ctx context.Context, user, device string) (keydir.Status, error)
	Claim(ctx context.Context, user string) (version uint64, claimed []keydir.Claimed, err error)
	Devices(ctx context.Context, user string) (keydir.DeviceList, error)
	RemoveDevice(ctx context.Context, user, device string) (keydir.DeviceChange, error)
}

// maxPublish is the most one-time KeyPackages one request publishes.
const maxPublish = 50

type publishRequest struct {
	KeyPackages [][]byte `json:"key_packages"`
	LastResort  []byte   `json:"last_resort,omitempty"`
}

// bodyLimit bounds a publication: maxPublish KeyPackages and a
// last-resort one at their largest, base64.
func (*publishRequest) bodyLimit() int64 {
	return (maxPublish+1)*(base64Len(keydir.MaxPackageBytes)+4) + 4096
}

type keyStatusJSON struct {
	keydir.Status
	DevicesVersion uint64 `json:"devices_version"`
}

type claimedJSON struct {
	DeviceID   string `json:"device_id"`
	KeyPackage []byte `json:"key_package"`
	LastResort bool   `json:"last_resort"`
}

type claimJSON struct {
	UserID         string        `json:"user_id"`
	DevicesVersion uint64        `json:"devices_version"`
	KeyPackages    []claimedJSON `json:"key_packages"`
}

type devicesJSON struct {
	UserID string `json:"user_id"`
	keydir.DeviceList
}

// keys returns the key directory, or answers 503 and returns nil.
func (s *Server) keys(w http.ResponseWriter) KeyDirectory {
	if s.cfg.Keys == nil {
		writeProblem(w, newError(codeUnavailable, "end-to-end encryption is not enabled on this node"))
	}
	return s.cfg.Keys
}

// ownDevice returns the device id the path parameter param holds, which
// is always a device of the authenticated user, or answers
// invalid_request.
func (s *Server) ownDevice(w http.ResponseWriter, r *http.Request, param string) (device string, ok bool) {
	device = chi.URLParam(r, param)
	if !schemas.ValidDeviceID(device) {
		writeProblem(w, s.reject("gateway", newError(codeInvalidRequest, "a device id has 1 to 64 of A-Z a-z 0-9 . _ : -")))
		return "", false
	}
	return device, true
}

func (s *Server) keyError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, keydir.ErrRefused):
		writeProblem(w, s.reject("gateway", newError(codeInvalidRequest, err.Error())))
	case errors.Is(err, keydir.ErrFull):
		writeProblem(w, s.reject("gateway", newError(schemas.CodeLimitExceeded, err.Error())))
	case errors.Is(err, keydir.ErrNoDevice):
		writeProblem(w, s.reject("gateway", newError(codeNotFound, err.Error())))
	default:
		s.log.Error("key directory", "err", err)
		writeProblem(w, newError(codeUnavailable, "the key directory failed; retry"))
	}
}

// publishKeyPackages serves POST /v1/devices/{device}/key-packages.
func (s *Server) publishKeyPackages(w http.ResponseWriter, r *http.Request) {
	keys := s.keys(w)
	device, ok := s.ownDevice(w, r, "device")
	if keys == nil || !ok {
		return
	}
	me := identity(r.Context()).UserID
	var req publishRequest
	if e := s.decodeBody(w, r, &req); e != nil {
		writeProblem(w, s.reject("gateway", e))
		return
	}
	if len(req.KeyPackages) > maxPublish {
		writeProblem(w, s.reject("gateway", newError(codeInvalidRequest, "at most 50 key_packages a request")))
		return
	}
	if len(req.KeyPackages) == 0 && req.LastResort == nil {
		writeProblem(w, s.reject("gateway", newError(codeInvalidRequest, "key_packages or last_resort is required")))
		return
	}
	now := time.Now()
	pkgs := make([]keydir.Package, 0, len(req.KeyPackages))
	for _, b := range req.KeyPackages {
		p, err := keydir.Check(b, me, device, now)
		if err != nil {
			s.keyError(w, err)
			return
		}
		pkgs = append(pkgs, p)
	}
	var last *keydir.Package
	if req.LastResort != nil {
		p, err := keydir.Check(req.LastResort, me, device, now)
		if err != nil {
			s.keyError(w, err)
			return
		}
		last = &p
	}
	st, change, err := keys.Publish(r.Context(), me, device, pkgs, last)
	if err != nil {
		s.keyError(w, err)
		return
	}
	version := change.List.Version
	if !change.Added {
		l, err := keys.Devices(r.Context(), me)
		if err != nil {
			s.keyError(w, err)
			return
		}
		version = l.Version
	}
	writeJSON(w, http.StatusOK, keyStatusJSON{Status: st, DevicesVersion: version})
}

// keyPackageStatus serves GET /v1/devices/{device}/key-packages: how
// many one-time KeyPackages the caller's device has left, and whether
// it should top up.
func (s *Server) keyPackageStatus(w http.ResponseWriter, r *http.Request) {
	keys := s.keys(w)
	device, ok := s.ownDevice(w, r, "device")
	if keys == nil || !ok {
		return
	}
	me := identity(r.Context()).UserID
	st, err := keys.Status(r.Context(), me, device)
	if err != nil {
		s.keyError(w, err)
		return
	}
	l, err := keys.Devices(r.Context(), me)
	if err != nil {
		s.keyError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, keyStatusJSON{Status: st, DevicesVersion: l.Version})
}

// removeDevice serves DELETE /v1/devices/{device}.
func (s *Server) removeDevice(w http.ResponseWriter, r *http.Request) {
	keys := s.keys(w)
	device, ok := s.ownDevice(w, r, "device")
	if keys == nil || !ok {
		return
	}
	me := identity(r.Context()).UserID
	change, err := keys.RemoveDevice(r.Context(), me, device)
	if err != nil {
		s.keyError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, devicesJSON{UserID: me, DeviceList: nonNilDevices(change.List)})
}

// userFromPath returns the {user} of the path.
func (s *Server) userFromPath(w http.ResponseWriter, r *http.Request) (string, bool) {
	user := chi.URLParam(r, "user")
	if !schemas.ValidUserID(user) {
		writeProblem(w, s.reject("gateway", newError(codeInvalidRequest, "malformed user id")))
		return "", false
	}
	return user, true
}

// listDevices serves GET /v1/users/{user}/devices.
func (s *Server) listDevices(w http.ResponseWriter, r *http.Request) {
	keys := s.keys(w)
	if keys == nil {
		return
	}
	user, ok := s.userFromPath(w, r)
	if !ok {
		return
	}
	l, err := keys.Devices(r.Context(), user)
	if err != nil {
		s.keyError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, devicesJSON{UserID: user, DeviceList: nonNilDevices(l)})
}

// claimKeyPackages serves GET /v1/users/{user}/key-packages: one
// KeyPackage of each of the user's devices, each one-time KeyPackage
// handed out once (the last-resort one when none is left).
func (s *Server) claimKeyPackages(w http.ResponseWriter, r *http.Request) {
	keys := s.keys(w)
	if keys == nil {
		return
	}
	user, ok := s.userFromPath(w, r)
	if !ok {
		return
	}
	version, claimed, err := keys.Claim(r.Context(), user)
	if err != nil {
		s.keyError(w, err)
		return
	}
	out := claimJSON{UserID: user, DevicesVersion: version, KeyPackages: make([]claimedJSON, 0, len(claimed))}
	for _, c := range claimed {
		out.KeyPackages = append(out.KeyPackages, claimedJSON{DeviceID: c.Device, KeyPackage: c.Data, LastResort: c.LastResort})
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, out)
}

func nonNilDevices(l keydir.DeviceList) keydir.DeviceList {
	if l.Devices == nil {
		l.Devices = []keydir.Device{}
	}
	return l
}

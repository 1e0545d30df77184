// Package versitys3 runs the embedded default file store: a real S3
// server (github.com/versity/versitygw, its embedgw package with the
// posix backend and side-car metadata) inside the Parley process, storing
// objects as plain files under a directory. It checks SigV4 for real,
// presigned URLs included, so the embedded default refuses exactly what
// a production S3 refuses.
//
// versitygw keeps state in package globals, allows one gateway per
// process, and its posix backend changes the process's working directory
// to the store's root (it resolves buckets relative to it). Start
// therefore refuses a second server in one process, and callers must use
// absolute paths for everything else (app.Start makes the data dir
// absolute before anything opens it).
package versitys3

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/versity/versitygw/backend/meta"
	"github.com/versity/versitygw/backend/posix"
	"github.com/versity/versitygw/embedgw"
)

// ErrRunning: a server already runs in this process.
var ErrRunning = errors.New("versitys3: an embedded S3 server already runs in this process")

// Config configures the embedded server.
type Config struct {
	// Dir holds the objects (Dir/root) and their metadata (Dir/meta).
	// Required.
	Dir string
	// Addr is the listen address; port 0 picks a free port.
	// Default: 127.0.0.1:0.
	Addr string
	// Region is the SigV4 region. Default: us-east-1.
	Region string
	// AccessKey and SecretKey are the root credentials. Default: random
	// for each start (only Parley, which signs every URL, needs them).
	AccessKey, SecretKey string
}

// Server is a running embedded S3 server.
type Server struct {
	cfg    Config
	addr   string
	cancel context.CancelFunc
	done   chan error
}

// running guards versitygw's one-gateway-per-process rule across the
// process; versitygw's own globals are why it must be process-wide.
var running atomic.Bool

// Start starts the server and returns once it accepts connections. Stop
// it with Close.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("versitys3: no directory")
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.AccessKey == "" || cfg.SecretKey == "" {
		cfg.AccessKey, cfg.SecretKey = "parley-"+randomHex(8), randomHex(24)
	}
	if !running.CompareAndSwap(false, true) {
		return nil, ErrRunning
	}
	s, err := start(ctx, cfg)
	if err != nil {
		running.Store(false)
		return nil, err
	}
	return s, nil
}

func start(ctx context.Context, cfg Config) (*Server, error) {
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("versitys3: %w", err)
	}
	root, side := filepath.Join(dir, "root"), filepath.Join(dir, "meta")
	for _, d := range []string{root, side} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("versitys3: %w", err)
		}
	}
	addr, err := freeAddr(cfg.Addr)
	if err != nil {
		return nil, err
	}
	sc, err := meta.NewSideCar(side)
	if err != nil {
		return nil, fmt.Errorf("versitys3: side-car metadata: %w", err)
	}
	be, err := posix.New(root, sc, posix.PosixOpts{SideCarDir: side, ValidateBucketNames: true})
	if err != nil {
		return nil, fmt.Errorf("versitys3: posix backend: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &Server{cfg: cfg, addr: addr, cancel: cancel, done: make(chan error, 1)}
	go func() {
		err := embedgw.RunVersityGW(runCtx, be, &embedgw.Config{
			RootUserAccess: cfg.AccessKey, RootUserSecret: cfg.SecretKey, Region: cfg.Region,
			Ports: []string{addr}, MaxConnections: 1000, MaxRequests: 1000, MultipartMaxParts: 10000,
			Quiet: true, KeepAlive: true, HealthPath: "/_parley_health",
		})
		be.Shutdown()
		running.Store(false)
		s.done <- err
	}()
	if err := s.waitListening(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// waitListening polls the address until it accepts a connection, the
// server fails, or ctx ends.
func (s *Server) waitListening(ctx context.Context) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case err := <-s.done:
			s.done <- err
			return fmt.Errorf("versitys3: server stopped: %w", err)
		case <-ctx.Done():
			return fmt.Errorf("versitys3: waiting for %s: %w", s.addr, ctx.Err())
		case <-tick.C:
		}
	}
}

// Endpoint is the server's base URL.
func (s *Server) Endpoint() string { return "http://" + s.addr }

// Region is the SigV4 region it checks signatures for.
func (s *Server) Region() string { return s.cfg.Region }

// Credentials are the root access and secret keys.
func (s *Server) Credentials() (accessKey, secretKey string) {
	return s.cfg.AccessKey, s.cfg.SecretKey
}

// Close stops the server and waits for it.
func (s *Server) Close() error {
	s.cancel()
	err := <-s.done
	s.done <- err
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("versitys3: %w", err)
	}
	return nil
}

// freeAddr resolves a listen address with port 0 to a free port: versitygw
// takes addresses, not listeners. Another process could take the port
// between this check and versitygw's listen; Start then fails and can be
// retried.
func freeAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("versitys3: listen address %q: %w", addr, err)
	}
	if port != "0" {
		return addr, nil
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", fmt.Errorf("versitys3: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

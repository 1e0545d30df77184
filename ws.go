// The ws command: a small interactive WebSocket client for trying Parley by
// hand and for scripts. It sends each line read from stdin as one text frame
// and prints each frame it receives as "< frame".
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/parley/gateway"
	"github.com/parley-chat/parley/internal/app"
)

const wsUsage = "usage: parley ws [-url URL] [-user USER | -token TOKEN] [-device ID] [settings flags]"

// wsClient runs `parley ws`: it authenticates with the first frame when
// given a user or a token, then relays stdin to the socket and the socket to
// stdout until stdin ends (a normal close), the server closes or ctx ends.
func wsClient(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ws", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", defaultWSURL(getenv("PARLEY_HTTP_ADDR")), "the gateway's WebSocket URL (default from PARLEY_HTTP_ADDR)")
	user := fs.String("user", "", "authenticate as USER with a token signed by the configured secret (as `parley token USER` prints)")
	token := fs.String("token", "", "authenticate with this token")
	device := fs.String("device", "", "the device id of the auth frame (presence counts one device per socket)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *user != "" && *token != "" {
		return errors.New("-user and -token exclude each other; " + wsUsage)
	}
	if *user != "" {
		cfg, err := app.Load("ws", fs.Args(), getenv, stderr)
		if err != nil {
			return err
		}
		if cfg.OIDC() {
			return errDevTokensWithOIDC
		}
		auth, err := gateway.NewAuthenticator(gateway.AuthConfig{Secret: cfg.Secret(), Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience})
		if err != nil {
			return err
		}
		if *token, err = auth.Issue(*user, 24*time.Hour, time.Now()); err != nil {
			return err
		}
	} else if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v; %s", fs.Args(), wsUsage)
	}

	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, _, err := websocket.Dial(dctx, *url, nil)
	cancel()
	if err != nil {
		return fmt.Errorf("connect to %s: %w", *url, err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(1 << 22)
	if *token != "" {
		auth := map[string]string{"type": "auth", "id": "auth", "token": *token}
		if *device != "" {
			auth["device_id"] = *device
		}
		frame, err := json.Marshal(auth)
		if err != nil {
			return err
		}
		if err := conn.Write(ctx, websocket.MessageText, frame); err != nil {
			return fmt.Errorf("authenticate: %w", err)
		}
	}

	// Once this side closes, the read that was waiting ends with an error
	// of the closing: that is the end, not a failure.
	var closing atomic.Bool
	received := make(chan error, 1)
	go func() { received <- printFrames(ctx, conn, &closing, stdout) }()
	sent := make(chan error, 1)
	go func() { sent <- sendLines(ctx, conn, stdin) }()
	select {
	case err := <-received:
		return err
	case err := <-sent:
		if err != nil {
			return err
		}
		closing.Store(true)
		conn.Close(websocket.StatusNormalClosure, "")
		return <-received
	case <-ctx.Done():
		closing.Store(true)
		conn.Close(websocket.StatusNormalClosure, "")
		<-received
		return nil
	}
}

// printFrames prints every frame until the socket closes; a close other than
// a normal one is returned as an error naming its code and reason.
func printFrames(ctx context.Context, conn *websocket.Conn, closing *atomic.Bool, stdout io.Writer) error {
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			switch status := websocket.CloseStatus(err); {
			case status == websocket.StatusNormalClosure, ctx.Err() != nil, closing.Load():
				return nil
			case status != -1:
				var ce websocket.CloseError
				errors.As(err, &ce)
				return fmt.Errorf("the server closed the socket: %d %s", status, ce.Reason)
			default:
				return fmt.Errorf("read: %w", err)
			}
		}
		if _, err := fmt.Fprintf(stdout, "< %s\n", data); err != nil {
			return err
		}
	}
}

// sendLines sends every non-empty line of r as a text frame until r ends.
func sendLines(ctx context.Context, conn *websocket.Conn, r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<22)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if err := conn.Write(ctx, websocket.MessageText, []byte(line)); err != nil {
			return fmt.Errorf("send: %w", err)
		}
	}
	return sc.Err()
}

// defaultWSURL is the socket of a gateway listening on addr (the
// PARLEY_HTTP_ADDR form), reached from this machine.
func defaultWSURL(addr string) string { return "ws://" + localAddr(addr) + "/v1/ws" }

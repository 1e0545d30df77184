package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"testing"

	"github.com/parley-chat/parley/internal/app"
)

// runSettings are the settings of an in-process `parley run` over dir on
// free ports, with extra ones; the offline commands take them too.
func runSettings(dir string, extra ...string) []string {
	return append([]string{"-data-dir", dir, "-kafka-listen", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-s3-listen", "off",
		"-partitions", "2", "-log-level", "warn"}, extra...)
}

// kekSetting is a fresh key-encryption key as a setting: content is then
// sealed.
func kekSetting() []string {
	kek := make([]byte, 32)
	_, _ = rand.Read(kek)
	return []string{"-content-kek", base64.StdEncoding.EncodeToString(kek)}
}

// startRun starts roles of `parley run` in-process with settings; they
// run until ctx ends or the test stops them.
func startRun(ctx context.Context, t *testing.T, roles app.Roles, settings []string) *app.System {
	t.Helper()
	cfg, err := app.Load("run", settings, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	sys, err := app.Start(ctx, cfg, roles, cfg.Logger(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	return sys
}

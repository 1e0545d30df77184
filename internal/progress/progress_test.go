package progress_test

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/progress"
)

func TestPrinter(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	p := progress.New(&buf, "search rebuild", 5*time.Second, clock)
	p.Report(0, 1000)
	now = now.Add(time.Second)
	p.Report(100, 1000) // within the interval: not printed
	now = now.Add(9 * time.Second)
	p.Report(500, 1000)
	now = now.Add(5 * time.Second)
	p.Report(1000, 1000)
	p.Report(1000, 1000) // the final line once
	want := "search rebuild: 0/1000 records (0.0%), 0 records/s, ETA unknown\n" +
		"search rebuild: 500/1000 records (50.0%), 50 records/s, ETA 10s\n" +
		"search rebuild: 1000/1000 records (100.0%), 67 records/s, ETA 0s\n"
	if buf.String() != want {
		t.Errorf("printed\n%s\nwant\n%s", buf.String(), want)
	}
}

func TestPrinterConcurrentReports(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	p := progress.New(&buf, "replay", time.Hour, nil)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() { p.Report(int64(i), 8) })
	}
	wg.Wait()
	p.Report(8, 8)
	if got := bytes.Count(buf.Bytes(), []byte("\n")); got < 2 || !bytes.Contains(buf.Bytes(), []byte("replay: 8/8 records (100.0%)")) {
		t.Errorf("printed %q; want the first line and the final one", buf.String())
	}
}

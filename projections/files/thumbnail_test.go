package files_test

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"testing"

	"github.com/parley-chat/parley/projections/files"
)

func pngOf(t *testing.T, w, h int, c color.Color) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, c)
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestMakeThumbnail: a large image becomes a JPEG within 320×320 with its
// aspect ratio and colour; a small one keeps its size; what is not an
// image of its declared type gets ErrNotAnImage.
func TestMakeThumbnail(t *testing.T) {
	t.Parallel()
	red := color.RGBA{200, 30, 30, 255}
	for _, tt := range []struct {
		w, h, wantW, wantH int
	}{
		{1600, 1200, 320, 240},
		{600, 1200, 160, 320},
		{100, 50, 100, 50},
	} {
		jpg, w, h, err := files.MakeThumbnail(pngOf(t, tt.w, tt.h, red), "image/png")
		if err != nil {
			t.Fatal(err)
		}
		if w != tt.wantW || h != tt.wantH {
			t.Errorf("%dx%d: thumbnail %dx%d, want %dx%d", tt.w, tt.h, w, h, tt.wantW, tt.wantH)
		}
		img, err := jpeg.Decode(bytes.NewReader(jpg))
		if err != nil {
			t.Fatalf("the thumbnail is no JPEG: %v", err)
		}
		if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
			t.Errorf("JPEG is %v, reported %dx%d", b, w, h)
		}
		r, g, _, _ := img.At(w/2, h/2).RGBA()
		if r>>8 < 180 || g>>8 > 60 {
			t.Errorf("the thumbnail lost the colour: r=%d g=%d", r>>8, g>>8)
		}
	}
	if _, _, _, err := files.MakeThumbnail([]byte("not a png"), "image/png"); !errors.Is(err, files.ErrNotAnImage) {
		t.Errorf("garbage: %v, want ErrNotAnImage", err)
	}
	if _, _, _, err := files.MakeThumbnail(pngOf(t, 10, 10, red), "image/svg+xml"); !errors.Is(err, files.ErrNotAnImage) {
		t.Errorf("svg: %v, want ErrNotAnImage", err)
	}
	if !files.Thumbnailable("image/jpeg", 1<<20) || files.Thumbnailable("image/jpeg", 1<<30) || files.Thumbnailable("application/pdf", 10) {
		t.Error("Thumbnailable is wrong")
	}
}

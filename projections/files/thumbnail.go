package files

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/draw"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
)

// Thumbnail limits.
const (
	// ThumbnailMax is the longest side of a thumbnail, in pixels.
	ThumbnailMax = 320
	// MaxThumbnailSource is the largest image a thumbnail is made of, in
	// bytes; larger images get none.
	MaxThumbnailSource = 25 << 20
	// maxSourcePixels refuses images whose header announces more pixels
	// than this before decoding them (a small file can announce a huge
	// image).
	maxSourcePixels = 50_000_000
)

// ErrNotAnImage: the content type is not one a thumbnail is made of, or
// the bytes are not an image of that type.
var ErrNotAnImage = errors.New("not an image thumbnails are made of")

// Thumbnailable reports whether a file of this media type and size gets
// a thumbnail: JPEG, PNG and GIF (its first frame) up to
// MaxThumbnailSource.
func Thumbnailable(contentType string, size uint64) bool {
	_, ok := decoders[contentType]
	return ok && size <= MaxThumbnailSource
}

type decoder struct {
	config func(io.Reader) (image.Config, error)
	decode func(io.Reader) (image.Image, error)
}

// decoders are explicit, by media type: no registration by blank import.
var decoders = map[string]decoder{
	"image/jpeg": {jpeg.DecodeConfig, jpeg.Decode},
	"image/png":  {png.DecodeConfig, png.Decode},
	"image/gif":  {gif.DecodeConfig, gif.Decode},
}

// MakeThumbnail decodes the image src of contentType and returns a JPEG
// of it that fits in ThumbnailMax×ThumbnailMax (never larger than the
// original), with its width and height.
func MakeThumbnail(src []byte, contentType string) (jpg []byte, width, height int, err error) {
	d, ok := decoders[contentType]
	if !ok {
		return nil, 0, 0, fmt.Errorf("%w: %s", ErrNotAnImage, contentType)
	}
	cfg, err := d.config(bytes.NewReader(src))
	if err != nil {
		return nil, 0, 0, fmt.Errorf("%w: %w", ErrNotAnImage, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width*cfg.Height > maxSourcePixels {
		return nil, 0, 0, fmt.Errorf("%w: %dx%d pixels", ErrNotAnImage, cfg.Width, cfg.Height)
	}
	img, err := d.decode(bytes.NewReader(src))
	if err != nil {
		return nil, 0, 0, fmt.Errorf("%w: %w", ErrNotAnImage, err)
	}
	b := img.Bounds()
	width, height = fit(b.Dx(), b.Dy(), ThumbnailMax)
	rgba := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(rgba, rgba.Bounds(), img, b.Min, draw.Src)
	small := shrink(rgba, width, height)
	var out bytes.Buffer
	if err := jpeg.Encode(&out, small, &jpeg.Options{Quality: 80}); err != nil {
		return nil, 0, 0, fmt.Errorf("encoding a thumbnail: %w", err)
	}
	return out.Bytes(), width, height, nil
}

// fit scales w×h down to fit in max×max, keeping the aspect ratio.
func fit(w, h, max int) (int, int) {
	if w <= max && h <= max {
		return w, h
	}
	if w >= h {
		return max, maxInt(1, h*max/w)
	}
	return maxInt(1, w*max/h), max
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}

// shrink averages the pixels of src that fall in each pixel of a w×h
// image (a box filter: the right one for shrinking).
func shrink(src *image.RGBA, w, h int) *image.RGBA {
	sw, sh := src.Bounds().Dx(), src.Bounds().Dy()
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		y0, y1 := y*sh/h, maxInt((y+1)*sh/h, y*sh/h+1)
		for x := 0; x < w; x++ {
			x0, x1 := x*sw/w, maxInt((x+1)*sw/w, x*sw/w+1)
			var r, g, b, a, n uint64
			for sy := y0; sy < y1; sy++ {
				row := src.Pix[sy*src.Stride:]
				for sx := x0; sx < x1; sx++ {
					p := row[sx*4 : sx*4+4]
					r, g, b, a, n = r+uint64(p[0]), g+uint64(p[1]), b+uint64(p[2]), a+uint64(p[3]), n+1
				}
			}
			o := dst.Pix[y*dst.Stride+x*4:]
			o[0], o[1], o[2], o[3] = uint8(r/n), uint8(g/n), uint8(b/n), uint8(a/n)
		}
	}
	return dst
}

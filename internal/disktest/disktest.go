// Package disktest looks for content in the files a store leaves on
// disk: the check, in tests of sealing and erasure, that some words are
// in no file of a directory — not in a table, a log, a segment or a
// sidecar of metadata.
package disktest

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// FilesHolding reads every file under dir and returns one "path: word"
// for each file holding one of words in its bytes, and how many files it
// read. A file removed while it walks (a compaction) is passed over; a
// missing dir reads as empty.
func FilesHolding(dir string, words ...string) (found []string, read int, err error) {
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		read++
		for _, w := range words {
			if bytes.Contains(b, []byte(w)) {
				found = append(found, path+": "+w)
			}
		}
		return nil
	})
	return found, read, err
}

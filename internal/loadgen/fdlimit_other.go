//go:build !unix

package loadgen

func checkFDLimit(int) error { return nil }

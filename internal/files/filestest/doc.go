// Package filestest holds the end-to-end tests of file sharing: every
// role of `parley run` in this process, with the embedded S3 server
// (versitygw, real SigV4) as the file store, driven over real HTTP and
// WebSocket, every HTTP answer checked against the OpenAPI document.
//
// The tests live apart from internal/systemtest because versitygw allows
// one server per process and changes the process's working directory:
// these tests start their systems one at a time and use absolute paths
// only. TestRebuildFilesCommand runs the built parley binary as a separate
// process, `parley rebuild files` as an operator runs it.
package filestest

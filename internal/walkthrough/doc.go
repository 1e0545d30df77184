// Package walkthrough runs the README as a user would: every shell block in
// order in one shell, every WebSocket transcript as a scripted exchange, each
// output compared to the shape the README shows.
//
// The README marks what runs by the info string of its code blocks:
//
//	```sh        shell commands, run in order in one bash process; a comment
//	             line holding JSON (# {…}) right after a command is the shape
//	             of what that command prints. "# eventually {…}" marks a
//	             command that reads a projection, which follows the log
//	             within moments: it is repeated until its output matches.
//	```ws NAME   a transcript of the socket NAME: "$ cmd" starts the client
//	             cmd (in the background of the same shell, so it sees the
//	             shell's variables), "> frame" is a frame typed into it,
//	             "< frame" the shape of the next frame it prints, "~ frame"
//	             the shape of frames that come on their own schedule (from
//	             the start of that block on they may come between any
//	             others), "^D" ends the client's input, closing its socket
//	```console   shown, not run: commands that start the server or need
//	             Docker
//
// A shape is JSON in which "…" stands for what differs from run to run: as a
// value it matches any value, as an object member it allows further members,
// as an array element any number of elements, and inside a string any text
// ("d_…" matches every id that starts with d_, also as a member name).
// Without "…" an object must have exactly the members shown. In a frame
// typed into a socket, "d_…" and "g_…" stand for the shell's $CONV and
// $GROUP: the README asks the reader to paste their own conversation's id
// there.
//
// Every frame a client prints must be shown: one that matches neither the
// next "<" line nor a "~" line fails the run, and so does one still unread
// when the client ends.
package walkthrough

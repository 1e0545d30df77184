// The runner: one bash process for the shell blocks, a client started from
// it for each transcript's socket.
package walkthrough

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Runner plays a document's blocks in order against a running Parley.
type Runner struct {
	Dir     string            // the shell's working directory, holding ./parley
	Env     []string          // the shell's environment
	Rewrite *strings.Replacer // applied to every command: the README's addresses to the test's
	Wait    time.Duration     // the longest a command or a frame may take before the run fails
	Log     io.Writer         // every command, frame and output, as it happens

	sh      *shell
	sockets map[string]*socket
	// background holds, per socket name, the shapes of frames that come on
	// their own schedule ("~" lines): skipped wherever they arrive.
	background map[string][]Shape
	fifos      string
	started    int
}

// Start starts the shell.
func (r *Runner) Start() error {
	dir, err := os.MkdirTemp("", "walkthrough-fifos")
	if err != nil {
		return err
	}
	r.fifos, r.sockets, r.background = dir, map[string]*socket{}, map[string][]Shape{}
	r.sh, err = startShell(r.Dir, r.Env)
	return err
}

// Run plays one block: sh and ws blocks run, others are shown only.
func (r *Runner) Run(b Block) error {
	switch b.Lang {
	case "sh":
		for _, c := range b.Commands() {
			if err := r.command(c); err != nil {
				return fmt.Errorf("%v, line %d: %w", b, c.Line, err)
			}
		}
	case "ws":
		if len(b.Args) != 1 {
			return fmt.Errorf("%v: a transcript names its socket: ```ws NAME", b)
		}
		steps, err := b.Steps()
		if err != nil {
			return err
		}
		name := b.Args[0]
		for _, s := range steps {
			if s.Kind == '~' { // from the start of the block on
				shape, err := ParseShape(s.Text)
				if err != nil {
					return fmt.Errorf("%v, line %d: %w", b, s.Line, err)
				}
				r.background[name] = append(r.background[name], shape)
			}
		}
		for _, s := range steps {
			if err := r.step(b.Args[0], s); err != nil {
				return fmt.Errorf("%v, line %d (%s): %w", b, s.Line, b.Args[0], err)
			}
		}
	}
	return nil
}

// Close ends every socket's client, reporting frames the document did not
// show, and the shell.
func (r *Runner) Close() error {
	var errs []error
	for name, s := range r.sockets {
		if err := r.end(name, s); err != nil {
			errs = append(errs, fmt.Errorf("socket %s: %w", name, err))
		}
	}
	if r.sh != nil {
		errs = append(errs, r.sh.close())
	}
	if r.fifos != "" {
		errs = append(errs, os.RemoveAll(r.fifos))
	}
	return errors.Join(errs...)
}

func (r *Runner) logf(format string, args ...any) {
	if r.Log != nil {
		fmt.Fprintf(r.Log, format+"\n", args...)
	}
}

func (r *Runner) command(c Command) error {
	text := r.Rewrite.Replace(c.Text)
	r.logf("$ %s", text)
	deadline := time.Now().Add(r.Wait)
	for {
		out, status, err := r.sh.run(text, r.Wait)
		if err != nil {
			return err
		}
		r.logf("%s", out)
		if status != 0 {
			return fmt.Errorf("exit status %d:\n%s", status, out)
		}
		err = checkOutput(c, out)
		if err == nil || !c.Eventually || time.Now().After(deadline) {
			return err
		}
		time.Sleep(250 * time.Millisecond) // polling a projection until it has caught up
	}
}

// checkOutput compares what c printed with the shapes shown.
func checkOutput(c Command, out string) error {
	if len(c.Output) == 0 {
		if strings.Contains(out, "urn:parley:problem:") {
			return fmt.Errorf("printed a problem the README does not show:\n%s", out)
		}
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(out))
	for i, text := range c.Output {
		shape, err := ParseShape(text)
		if err != nil {
			return err
		}
		var v any
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("output %d of %d is not JSON (%v):\n%s", i+1, len(c.Output), err, out)
		}
		if err := shape.Match(v); err != nil {
			return fmt.Errorf("the output does not match # %s:\n%w\n%s", text, err, out)
		}
	}
	if dec.More() {
		return fmt.Errorf("printed more than the %d output(s) shown:\n%s", len(c.Output), out)
	}
	return nil
}

func (r *Runner) step(name string, s Step) error {
	sock := r.sockets[name]
	switch s.Kind {
	case EndOfInput:
		if sock == nil {
			return errors.New("no client started ($ line) for this socket")
		}
		r.logf("[%s] ^D", name)
		delete(r.sockets, name)
		return r.end(name, sock)
	case '~':
		return nil
	case '$':
		if sock != nil {
			if err := r.end(name, sock); err != nil {
				return err
			}
		}
		r.logf("[%s] $ %s", name, s.Text)
		r.started++
		sock, err := r.start(r.Rewrite.Replace(s.Text), fmt.Sprintf("%s-%d", name, r.started))
		if err != nil {
			return err
		}
		r.sockets[name] = sock
		return nil
	case '>':
		if sock == nil {
			return errors.New("no client started ($ line) for this socket")
		}
		frame, err := r.placeholders(s.Text)
		if err != nil {
			return err
		}
		r.logf("[%s] > %s", name, frame)
		_, err = io.WriteString(sock.in, frame+"\n")
		return err
	default:
		if sock == nil {
			return errors.New("no client started ($ line) for this socket")
		}
		shape, err := ParseShape(s.Text)
		if err != nil {
			return err
		}
		for {
			line, err := sock.next(r.Wait)
			if err != nil {
				return fmt.Errorf("waiting for < %s: %w", s.Text, err)
			}
			r.logf("[%s] %s", name, line)
			frame, ok := strings.CutPrefix(line, "< ")
			if !ok {
				return fmt.Errorf("the client printed %q, want a frame like < %s", line, s.Text)
			}
			var v any
			if err := json.Unmarshal([]byte(frame), &v); err != nil {
				return fmt.Errorf("frame %s: %w", frame, err)
			}
			err = shape.Match(v)
			if err == nil {
				return nil
			}
			if !r.inBackground(name, v) {
				return fmt.Errorf("frame %s does not match < %s:\n%w", frame, s.Text, err)
			}
		}
	}
}

// inBackground reports whether the frame v is one the socket name may get
// at any time.
func (r *Runner) inBackground(name string, v any) bool {
	for _, b := range r.background[name] {
		if b.Match(v) == nil {
			return true
		}
	}
	return false
}

// end ends the socket's client and reports the frames it printed that the
// document did not show.
func (r *Runner) end(name string, s *socket) error {
	lines, err := s.end(r.Wait)
	var unshown []string
	for _, line := range lines {
		r.logf("[%s] %s", name, line)
		var v any
		if frame, ok := strings.CutPrefix(line, "< "); ok && json.Unmarshal([]byte(frame), &v) == nil && r.inBackground(name, v) {
			continue
		}
		unshown = append(unshown, line)
	}
	if len(unshown) > 0 {
		err = errors.Join(err, fmt.Errorf("printed what the README does not show:\n%s", strings.Join(unshown, "\n")))
	}
	return err
}

// placeholders replaces the ids a reader pastes into a frame ("d_…",
// "g_…") by the shell's $CONV and $GROUP.
func (r *Runner) placeholders(frame string) (string, error) {
	for placeholder, variable := range map[string]string{`"d_…"`: "CONV", `"g_…"`: "GROUP"} {
		if !strings.Contains(frame, placeholder) {
			continue
		}
		value, status, err := r.sh.run(`printf '%s' "$`+variable+`"`, r.Wait)
		if err != nil || status != 0 || value == "" {
			return "", fmt.Errorf("%s stands for $%s, which is not set (%v)", placeholder, variable, err)
		}
		frame = strings.ReplaceAll(frame, placeholder, strconv.Quote(value))
	}
	if strings.Contains(frame, Ellipsis) {
		return "", fmt.Errorf("frame %s still holds %q", frame, Ellipsis)
	}
	return frame, nil
}

// start runs cmd in the background of the shell with its input and output
// on two named pipes.
func (r *Runner) start(cmd, id string) (*socket, error) {
	in, out := filepath.Join(r.fifos, id+".in"), filepath.Join(r.fifos, id+".out")
	for _, p := range []string{in, out} {
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			return nil, fmt.Errorf("mkfifo: %w", err)
		}
	}
	// Opened read-write, the input does not block until the client opens it.
	w, err := os.OpenFile(in, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	s := &socket{in: w, lines: make(chan string, 1024)}
	go s.read(out)
	// The braces end the command's own comment before the redirections.
	if _, status, err := r.sh.run(fmt.Sprintf("{ %s\n} <%q >%q 2>&1 &", cmd, in, out), r.Wait); err != nil || status != 0 {
		w.Close()
		return nil, fmt.Errorf("start %s: status %d, %v", cmd, status, err)
	}
	return s, nil
}

// socket is a client started by a transcript.
type socket struct {
	in    *os.File
	lines chan string // closed when the client's output ends
}

func (s *socket) read(path string) {
	defer close(s.lines)
	f, err := os.Open(path) // blocks until the client opens it
	if err != nil {
		s.lines <- "open " + path + ": " + err.Error()
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<22)
	for sc.Scan() {
		s.lines <- sc.Text()
	}
}

func (s *socket) next(wait time.Duration) (string, error) {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case line, ok := <-s.lines:
		if !ok {
			return "", errors.New("the client ended")
		}
		return line, nil
	case <-t.C:
		return "", fmt.Errorf("nothing printed within %v", wait)
	}
}

// end closes the client's input, which closes its socket, and returns what
// it printed that was not read yet.
func (s *socket) end(wait time.Duration) ([]string, error) {
	s.in.Close()
	var rest []string
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case line, ok := <-s.lines:
			if !ok {
				return rest, nil
			}
			rest = append(rest, line)
		case <-t.C:
			return rest, fmt.Errorf("the client did not end within %v of its input", wait)
		}
	}
}

// shell is a bash process that runs one command at a time.
type shell struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	mark  string
}

func startShell(dir string, env []string) (*shell, error) {
	cmd := exec.Command("bash", "--noprofile", "--norc")
	cmd.Dir, cmd.Env = dir, env
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	pw.Close()
	mark := make([]byte, 8)
	rand.Read(mark)
	s := &shell{cmd: cmd, stdin: stdin, lines: make(chan string, 1024), mark: "walkthrough-" + hex.EncodeToString(mark)}
	go func() {
		defer close(s.lines)
		sc := bufio.NewScanner(pr)
		sc.Buffer(nil, 1<<24)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
	}()
	_, _, err = s.run("set -o pipefail", 10*time.Second)
	return s, err
}

// run runs text and returns what it printed and its exit status.
func (s *shell) run(text string, wait time.Duration) (string, int, error) {
	if _, err := fmt.Fprintf(s.stdin, "%s\nprintf '\\n%s %%d\\n' $?\n", text, s.mark); err != nil {
		return "", 0, err
	}
	var out []string
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case line, ok := <-s.lines:
			if !ok {
				return strings.Join(out, "\n"), 0, errors.New("the shell ended")
			}
			if rest, ok := strings.CutPrefix(line, s.mark+" "); ok {
				status, err := strconv.Atoi(rest)
				return strings.TrimRight(strings.Join(out, "\n"), "\n"), status, err
			}
			out = append(out, line)
		case <-t.C:
			return strings.Join(out, "\n"), 0, fmt.Errorf("no end within %v", wait)
		}
	}
}

func (s *shell) close() error {
	s.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		return errors.New("the shell did not exit")
	}
}

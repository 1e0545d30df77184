// The code blocks of a Markdown document and how each is marked.
package walkthrough

import (
	"bufio"
	"fmt"
	"strings"
)

// Block is one fenced code block of a Markdown document.
type Block struct {
	Lang  string   // the first word of the info string: sh, ws, console…
	Args  []string // the rest of the info string (ws: the socket's name)
	Line  int      // the line of the opening fence, from 1
	Lines []string // the block's content
}

func (b Block) String() string { return fmt.Sprintf("README line %d (```%s)", b.Line, b.Lang) }

// Blocks returns the fenced code blocks of markdown in order.
func Blocks(markdown string) ([]Block, error) {
	var (
		blocks []Block
		cur    *Block
		n      int
	)
	sc := bufio.NewScanner(strings.NewReader(markdown))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		n++
		line := sc.Text()
		if !strings.HasPrefix(line, "```") {
			if cur != nil {
				cur.Lines = append(cur.Lines, line)
			}
			continue
		}
		if cur != nil {
			if strings.TrimSpace(line) != "```" {
				return nil, fmt.Errorf("line %d: a fence that closes the block of line %d has an info string", n, cur.Line)
			}
			blocks = append(blocks, *cur)
			cur = nil
			continue
		}
		info := strings.Fields(strings.TrimPrefix(line, "```"))
		cur = &Block{Line: n}
		if len(info) > 0 {
			cur.Lang, cur.Args = info[0], info[1:]
		}
	}
	if cur != nil {
		return nil, fmt.Errorf("the block of line %d is not closed", cur.Line)
	}
	return blocks, sc.Err()
}

// Command is one shell command of a block: its lines (joined by trailing
// backslashes) and the shapes of what it prints.
type Command struct {
	Line   int // in the document
	Text   string
	Output []string // shapes, one per JSON document printed
	// Eventually: the command reads a projection, which follows the log
	// within moments; it is repeated until its output matches. Only
	// commands that change nothing are marked so (# eventually {…}).
	Eventually bool
}

// Commands splits a shell block into commands. Comment lines are dropped,
// except a comment holding JSON right after a command: that is the shape of
// its output.
func (b Block) Commands() []Command {
	var cmds []Command
	open := false // the last command continues on the next line
	for i, line := range b.Lines {
		trimmed := strings.TrimSpace(line)
		switch {
		case open:
			c := &cmds[len(cmds)-1]
			c.Text += "\n" + line
			open = strings.HasSuffix(trimmed, `\`)
		case trimmed == "":
		case strings.HasPrefix(trimmed, "#"):
			body := strings.TrimSpace(strings.TrimPrefix(trimmed, "#"))
			eventually := false
			if rest, ok := strings.CutPrefix(body, "eventually "); ok {
				body, eventually = strings.TrimSpace(rest), true
			}
			if len(cmds) > 0 && (strings.HasPrefix(body, "{") || strings.HasPrefix(body, "[")) {
				c := &cmds[len(cmds)-1]
				c.Output = append(c.Output, body)
				c.Eventually = c.Eventually || eventually
			}
		default:
			cmds = append(cmds, Command{Line: b.Line + 1 + i, Text: line})
			open = strings.HasSuffix(trimmed, `\`)
		}
	}
	return cmds
}

// Step is one line of a transcript.
type Step struct {
	Line int
	Kind byte   // '$' start the client, '>' type a frame, '<' expect a frame, '~' a frame that may come between the others, EndOfInput
	Text string // the command, the frame or the frame's shape
}

// EndOfInput is the Kind of a "^D" line: the client's input ends (Ctrl-D),
// which closes its socket.
const EndOfInput = 'D'

// Steps parses a transcript block; comment lines (#) and blank lines are
// dropped, anything else is an error.
func (b Block) Steps() ([]Step, error) {
	var steps []Step
	for i, line := range b.Lines {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if trimmed == "^D" {
			steps = append(steps, Step{Line: b.Line + 1 + i, Kind: EndOfInput})
			continue
		}
		kind := trimmed[0]
		if !strings.ContainsRune("$><~", rune(kind)) || len(trimmed) < 2 || trimmed[1] != ' ' {
			return nil, fmt.Errorf("%v, line %d: a transcript line starts with \"$ \", \"> \", \"< \" or \"~ \", or is ^D: %q", b, b.Line+1+i, trimmed)
		}
		steps = append(steps, Step{Line: b.Line + 1 + i, Kind: kind, Text: strings.TrimSpace(trimmed[2:])})
	}
	return steps, nil
}

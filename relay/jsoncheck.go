package relay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// ErrTooDeep is returned for JSON nested deeper than the limit
// (limits.max_depth).
var ErrTooDeep = errors.New("JSON nested too deep")

// CheckJSON reports whether b is one JSON value that every parser reads the
// same way: well-formed, nested at most maxDepth arrays and objects deep,
// and with no object that repeats a member name (parsers disagree on which
// of {"id":"a","id":"b"} counts: encoding/json keeps the last, others the
// first). Names are compared after unescaping ("a" and "\u0061" are the
// same). It returns an error wrapping ErrInvalidJSON or ErrTooDeep, naming
// the offset.
//
// It is one pass without reflection or allocation for objects of up to
// smallObject members, so that it costs about what json.Valid does.
func CheckJSON(b []byte, maxDepth int) error {
	var (
		stack [16]frame
		names [32][]byte
	)
	c := checker{b: b, max: maxDepth, stack: stack[:0], names: names[:0]}
	return c.run()
}

// smallObject is how many members an object may have before its names go
// into a map rather than being compared one by one.
const smallObject = 16

// frame is an open array or object.
type frame struct {
	object bool
	first  int                 // index in checker.names of its first name
	set    map[string]struct{} // its names, once it has more than smallObject
}

type checker struct {
	b     []byte
	i     int
	max   int
	stack []frame
	names [][]byte // the names of the open objects, unescaped
}

func (c *checker) fail(format string, args ...any) error {
	return fmt.Errorf("%w: %s at byte %d", ErrInvalidJSON, fmt.Sprintf(format, args...), c.i)
}

func (c *checker) space() {
	for c.i < len(c.b) {
		switch c.b[c.i] {
		case ' ', '\t', '\n', '\r':
			c.i++
		default:
			return
		}
	}
}

// run walks the document: a value, then for each open container either its
// next element or its end.
func (c *checker) run() error {
	if err := c.value(); err != nil {
		return err
	}
	for len(c.stack) > 0 {
		top := &c.stack[len(c.stack)-1]
		c.space()
		if c.i >= len(c.b) {
			return c.fail("unexpected end")
		}
		switch ch := c.b[c.i]; {
		case ch == ',':
			c.i++
			if top.object {
				if err := c.name(top); err != nil {
					return err
				}
			}
			if err := c.value(); err != nil {
				return err
			}
		case ch == '}' && top.object, ch == ']' && !top.object:
			c.i++
			c.names = c.names[:top.first]
			c.stack = c.stack[:len(c.stack)-1]
		default:
			return c.fail("unexpected %q", ch)
		}
	}
	c.space()
	if c.i != len(c.b) {
		return c.fail("data after the value")
	}
	return nil
}

// value reads a scalar, or opens a container and reads its first element.
func (c *checker) value() error {
	c.space()
	if c.i >= len(c.b) {
		return c.fail("unexpected end")
	}
	switch ch := c.b[c.i]; ch {
	case '{', '[':
		if len(c.stack) >= c.max {
			return fmt.Errorf("%w: more than %d levels at byte %d (limits.max_depth)", ErrTooDeep, c.max, c.i)
		}
		c.i++
		c.stack = append(c.stack, frame{object: ch == '{', first: len(c.names)})
		top := &c.stack[len(c.stack)-1]
		c.space()
		if c.i < len(c.b) && (ch == '{' && c.b[c.i] == '}' || ch == '[' && c.b[c.i] == ']') {
			c.i++
			c.stack = c.stack[:len(c.stack)-1]
			return nil
		}
		if top.object {
			if err := c.name(top); err != nil {
				return err
			}
		}
		return c.value()
	case '"':
		_, err := c.str()
		return err
	case 't':
		return c.literal("true")
	case 'f':
		return c.literal("false")
	case 'n':
		return c.literal("null")
	default:
		return c.number()
	}
}

// name reads a member name and its colon, and checks that the object top
// has no other member of that name.
func (c *checker) name(top *frame) error {
	c.space()
	if c.i >= len(c.b) || c.b[c.i] != '"' {
		return c.fail("want a member name")
	}
	at := c.i
	n, err := c.str()
	if err != nil {
		return err
	}
	c.space()
	if c.i >= len(c.b) || c.b[c.i] != ':' {
		return c.fail("want ':'")
	}
	c.i++
	dup := false
	if top.set != nil {
		_, dup = top.set[string(n)]
		top.set[string(n)] = struct{}{}
	} else {
		for _, m := range c.names[top.first:] {
			if bytes.Equal(m, n) {
				dup = true
				break
			}
		}
		c.names = append(c.names, n)
		if len(c.names)-top.first > smallObject {
			top.set = make(map[string]struct{}, 2*smallObject)
			for _, m := range c.names[top.first:] {
				top.set[string(m)] = struct{}{}
			}
		}
	}
	if dup {
		return fmt.Errorf("%w: an object repeats the member name %q at byte %d", ErrInvalidJSON, n, at)
	}
	return nil
}

// str reads a string and returns its contents: the bytes of b when it has
// no escape, else the unescaped copy.
func (c *checker) str() ([]byte, error) {
	start := c.i
	c.i++
	escaped := false
	for c.i < len(c.b) {
		ch := c.b[c.i]
		switch {
		case ch == '"':
			c.i++
			if !escaped {
				return c.b[start+1 : c.i-1], nil
			}
			var s string
			if err := json.Unmarshal(c.b[start:c.i], &s); err != nil {
				return nil, c.fail("bad string")
			}
			return []byte(s), nil
		case ch == '\\':
			escaped = true
			if c.i+1 >= len(c.b) {
				return nil, c.fail("unexpected end")
			}
			switch c.b[c.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				c.i += 2
			case 'u':
				if c.i+6 > len(c.b) || !isHex4(c.b[c.i+2:c.i+6]) {
					return nil, c.fail("bad \\u escape")
				}
				c.i += 6
			default:
				return nil, c.fail("bad escape")
			}
		case ch < 0x20:
			return nil, c.fail("control character in a string")
		default:
			c.i++
		}
	}
	return nil, c.fail("unterminated string")
}

func isHex4(b []byte) bool {
	for _, ch := range b {
		if !(ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'f' || ch >= 'A' && ch <= 'F') {
			return false
		}
	}
	return true
}

func (c *checker) literal(word string) error {
	if !bytes.HasPrefix(c.b[c.i:], []byte(word)) {
		return c.fail("bad literal")
	}
	c.i += len(word)
	return nil
}

// number reads -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (c *checker) number() error {
	start := c.i
	if c.i < len(c.b) && c.b[c.i] == '-' {
		c.i++
	}
	switch {
	case c.i < len(c.b) && c.b[c.i] == '0':
		c.i++
	case c.i < len(c.b) && c.b[c.i] >= '1' && c.b[c.i] <= '9':
		c.digits()
	default:
		c.i = start
		return c.fail("want a value")
	}
	if c.i < len(c.b) && c.b[c.i] == '.' {
		c.i++
		if c.digits() == 0 {
			return c.fail("bad number")
		}
	}
	if c.i < len(c.b) && (c.b[c.i] == 'e' || c.b[c.i] == 'E') {
		c.i++
		if c.i < len(c.b) && (c.b[c.i] == '+' || c.b[c.i] == '-') {
			c.i++
		}
		if c.digits() == 0 {
			return c.fail("bad number")
		}
	}
	return nil
}

func (c *checker) digits() int {
	n := 0
	for c.i < len(c.b) && c.b[c.i] >= '0' && c.b[c.i] <= '9' {
		c.i++
		n++
	}
	return n
}

package b24event

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/b24hub/b24hub/libs/b24event/fixtures"
)

// fixture is one documentation example converted to form fields.
type fixture struct {
	name   string
	kind   string // "json", "php" or "print_r"
	json   []byte // the JSON document, for kind "json"
	fields []Field
}

// loadFixtures reads every fixture embedded by libs/b24event/fixtures.
func loadFixtures(tb testing.TB) []fixture {
	tb.Helper()
	return loadFixturesFrom(tb, fixtures.FS())
}

// loadFixturesFrom reads every *.txt file of fsys. A set without any fails
// the test, here and in CI alike: the fixtures are part of the repository,
// so none is never a reason to skip.
func loadFixturesFrom(tb testing.TB, fsys fs.FS) []fixture {
	tb.Helper()
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		tb.Fatalf("fixtures: %v", err)
		return nil
	}
	var out []fixture
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".txt") {
			continue
		}
		raw, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			tb.Fatal(err)
		}
		fx, err := parseFixture(e.Name(), raw)
		if err != nil {
			tb.Fatalf("%s: %v", e.Name(), err)
		}
		out = append(out, fx)
	}
	if len(out) == 0 {
		tb.Fatalf("no fixtures in %v", fsys)
		return nil
	}
	return out
}

// parseFixture drops the "# source:" line and converts what follows: a JSON
// document, a PHP array literal (var_export or short syntax) or a print_r
// dump.
func parseFixture(name string, raw []byte) (fixture, error) {
	fx := fixture{name: name}
	body := bytes.TrimSpace(fixtures.StripSource(raw))
	var err error
	switch {
	case bytes.HasPrefix(body, []byte("{")):
		fx.kind, fx.json = "json", body
		fx.fields, err = FormFromJSON(body)
	case bytes.HasPrefix(body, []byte("Array")):
		fx.kind = "print_r"
		fx.fields, err = parsePrintR(string(body))
	default:
		fx.kind = "php"
		fx.fields, err = parsePHPArray(string(body))
	}
	return fx, err
}

// parsePrintR converts PHP print_r output:
//
//	Array
//	(
//	    [event] => ONCRMDEALUPDATE
//	    [data] => Array
//	        (
//	            [FIELDS] => Array ( ... )
//	        )
//	)
func parsePrintR(s string) ([]Field, error) {
	var (
		fields  []Field
		stack   []string // open arrays; "" for the top level
		pending = ""     // key of an "=> Array" waiting for its "("
	)
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line == "Array":
		case line == "(":
			stack = append(stack, pending)
			pending = ""
		case line == ")":
			if len(stack) == 0 {
				return nil, errors.New("print_r: unbalanced )")
			}
			stack = stack[:len(stack)-1]
		case strings.HasPrefix(line, "["):
			end := strings.Index(line, "] => ")
			if end < 0 {
				return nil, fmt.Errorf("print_r: bad line %q", line)
			}
			k, v := line[1:end], line[end+len("] => "):]
			if v == "Array" {
				pending = k
				continue
			}
			fields = append(fields, Field{Key: bracketKey(stack, k), Value: v})
		default:
			return nil, fmt.Errorf("print_r: bad line %q", line)
		}
	}
	return fields, nil
}

// bracketKey joins the non-empty path segments and k in bracket notation.
func bracketKey(path []string, k string) string {
	var segs []string
	for _, p := range path {
		if p != "" {
			segs = append(segs, p)
		}
	}
	segs = append(segs, k)
	key := segs[0]
	for _, s := range segs[1:] {
		key += "[" + s + "]"
	}
	return key
}

// parsePHPArray converts the first PHP array literal in s, in var_export
// form (array ( 'k' => 'v', )) or short form (['k' => 'v']), to fields in
// order. An elided array "(...)" counts as empty.
func parsePHPArray(s string) ([]Field, error) {
	p := phpParser{s: s}
	i := strings.Index(s, "array (")
	j := strings.IndexByte(s, '[')
	switch {
	case i >= 0 && (j < 0 || i < j):
		p.pos = i + len("array")
	case j >= 0:
		p.pos = j
	default:
		return nil, errors.New("php: no array literal")
	}
	if err := p.array(nil); err != nil {
		return nil, err
	}
	return p.fields, nil
}

type phpParser struct {
	s      string
	pos    int
	fields []Field
}

func (p *phpParser) ws() {
	for p.pos < len(p.s) && strings.ContainsRune(" \t\r\n", rune(p.s[p.pos])) {
		p.pos++
	}
}

func (p *phpParser) errorf(format string, args ...any) error {
	return fmt.Errorf("php at %d: %s", p.pos, fmt.Sprintf(format, args...))
}

// array parses "( ... )" or "[ ... ]" at p.pos.
func (p *phpParser) array(path []string) error {
	p.ws()
	if p.pos >= len(p.s) {
		return p.errorf("eof")
	}
	closer := byte(')')
	if p.s[p.pos] == '[' {
		closer = ']'
	} else if p.s[p.pos] != '(' {
		return p.errorf("expected ( or [")
	}
	p.pos++
	for {
		p.ws()
		if p.pos >= len(p.s) {
			return p.errorf("eof in array")
		}
		if p.s[p.pos] == closer {
			p.pos++
			return nil
		}
		if strings.HasPrefix(p.s[p.pos:], "...") {
			p.pos += 3
			continue
		}
		key, err := p.scalar()
		if err != nil {
			return err
		}
		p.ws()
		if !strings.HasPrefix(p.s[p.pos:], "=>") {
			return p.errorf("expected =>")
		}
		p.pos += 2
		p.ws()
		switch {
		case strings.HasPrefix(p.s[p.pos:], "array"):
			p.pos += len("array")
			if err := p.array(append(path, key)); err != nil {
				return err
			}
		case p.pos < len(p.s) && p.s[p.pos] == '[':
			if err := p.array(append(path, key)); err != nil {
				return err
			}
		default:
			v, err := p.scalar()
			if err != nil {
				return err
			}
			p.fields = append(p.fields, Field{Key: bracketKey(path, key), Value: v})
		}
		p.ws()
		if p.pos < len(p.s) && p.s[p.pos] == ',' {
			p.pos++
		}
	}
}

// scalar parses a single-quoted string or an integer.
func (p *phpParser) scalar() (string, error) {
	if p.pos < len(p.s) && p.s[p.pos] == '\'' {
		var b strings.Builder
		for i := p.pos + 1; i < len(p.s); i++ {
			switch c := p.s[i]; c {
			case '\\':
				if i+1 < len(p.s) && (p.s[i+1] == '\'' || p.s[i+1] == '\\') {
					i++
					b.WriteByte(p.s[i])
				} else {
					b.WriteByte(c)
				}
			case '\'':
				p.pos = i + 1
				return b.String(), nil
			default:
				b.WriteByte(c)
			}
		}
		return "", p.errorf("unterminated string")
	}
	start := p.pos
	for p.pos < len(p.s) && (p.s[p.pos] == '-' || ('0' <= p.s[p.pos] && p.s[p.pos] <= '9')) {
		p.pos++
	}
	if _, err := strconv.Atoi(p.s[start:p.pos]); err != nil {
		return "", p.errorf("expected a string or integer")
	}
	return p.s[start:p.pos], nil
}

// recordTB records whether loadFixturesFrom skipped or failed.
type recordTB struct {
	testing.TB
	calls []string
}

func (r *recordTB) Helper()                        {}
func (r *recordTB) Fatal(a ...any)                 { r.calls = append(r.calls, "fatal") }
func (r *recordTB) Fatalf(format string, a ...any) { r.calls = append(r.calls, "fatal") }
func (r *recordTB) Skipf(format string, a ...any)  { r.calls = append(r.calls, "skip") }

// TestMissingFixtures: an empty fixture set fails, with or without CI; it
// never skips.
func TestMissingFixtures(t *testing.T) {
	for _, ci := range []string{"true", "", "false"} {
		t.Setenv("CI", ci)
		r := &recordTB{TB: t}
		if got := loadFixturesFrom(r, fstest.MapFS{}); got != nil || len(r.calls) != 1 || r.calls[0] != "fatal" {
			t.Errorf("CI=%q: calls %v, want [fatal]", ci, r.calls)
		}
	}
}

// TestFixturesEmbedded: the documented set is part of the repository.
func TestFixturesEmbedded(t *testing.T) {
	if n := len(loadFixtures(t)); n < 30 {
		t.Fatalf("%d fixtures, want the documented set (at least 30)", n)
	}
}

package serve

import (
	"strings"

	"github.com/nikolalohinski/gonja/v2/exec"
)

// The Jinja engine (gonja) cannot parse a conditional expression inside
// parentheses, (A if B else C), which Gemma 3's chat template uses. Before
// compiling, such groups are rewritten into a call of condFunc:
// __roe_cond((B), (A), (C)). Unlike Jinja, both branches are evaluated.

const condFunc = "__roe_cond"

// cond is condFunc: A when B is true (Jinja truthiness), else C.
func cond(b, x, y *exec.Value) *exec.Value {
	if b.IsTrue() {
		return x
	}
	return y
}

// rewriteCondExprs rewrites the parenthesised conditionals inside the
// {{ }} and {% %} tags of a template; text outside tags is left alone.
func rewriteCondExprs(src string) string {
	var b strings.Builder
	for {
		i := strings.Index(src, "{")
		if i < 0 || i+1 >= len(src) {
			b.WriteString(src)
			return b.String()
		}
		var end string
		switch src[i+1] {
		case '{':
			end = "}}"
		case '%':
			end = "%}"
		case '#':
			end = "#}"
		default:
			b.WriteString(src[:i+1])
			src = src[i+1:]
			continue
		}
		j := tagEnd(src, i+2, end)
		if j < 0 {
			b.WriteString(src)
			return b.String()
		}
		b.WriteString(src[:i+2])
		body := src[i+2 : j]
		if end != "#}" {
			body = rewriteExpr(body)
		}
		b.WriteString(body)
		src = src[j:]
	}
}

// tagEnd finds the end marker of a tag from i, skipping string literals.
func tagEnd(s string, i int, end string) int {
	for i < len(s) {
		switch c := s[i]; {
		case c == '\'' || c == '"':
			i = skipString(s, i)
		case strings.HasPrefix(s[i:], end):
			return i
		default:
			i++
		}
	}
	return -1
}

// skipString returns the index after the string literal starting at i.
func skipString(s string, i int) int {
	q := s[i]
	for i++; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case q:
			return i + 1
		}
	}
	return len(s)
}

// rewriteExpr rewrites the innermost grouping parenthesis holding a
// top-level "if … else" until none is left.
func rewriteExpr(e string) string {
	for n := 0; n < 1000; n++ {
		var stack []int
		done := true
	scan:
		for i := 0; i < len(e); i++ {
			switch e[i] {
			case '\'', '"':
				i = skipString(e, i) - 1
			case '(':
				stack = append(stack, i)
			case ')':
				if len(stack) == 0 {
					continue
				}
				o := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				if isCall(e, o) {
					continue
				}
				a, c, x, ok := splitCond(e[o+1 : i])
				if !ok {
					continue
				}
				e = e[:o] + condFunc + "((" + c + "), (" + a + "), (" + x + "))" + e[i+1:]
				done = false
				break scan
			}
		}
		if done {
			break
		}
	}
	return e
}

// isCall reports whether the parenthesis at o opens a call or a subscript's
// argument list rather than a group.
func isCall(e string, o int) bool {
	k := o - 1
	for k >= 0 && (e[k] == ' ' || e[k] == '\t' || e[k] == '\n') {
		k--
	}
	if k < 0 {
		return false
	}
	c := e[k]
	if c == ')' || c == ']' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
		// a keyword before a group is not a call: "if (a)", "not (b)"
		w := k
		for w >= 0 && (e[w] == '_' || e[w] >= 'a' && e[w] <= 'z' || e[w] >= 'A' && e[w] <= 'Z' || e[w] >= '0' && e[w] <= '9') {
			w--
		}
		switch e[w+1 : k+1] {
		case "if", "elif", "not", "and", "or", "in", "is", "else", "return":
			return false
		}
		return true
	}
	return false
}

// splitCond splits "A if B else C" at its top-level keywords.
func splitCond(s string) (a, b, c string, ok bool) {
	depth, ifAt, elseAt := 0, -1, -1
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case ch == '\'' || ch == '"':
			i = skipString(s, i) - 1
		case ch == '(' || ch == '[' || ch == '{':
			depth++
		case ch == ')' || ch == ']' || ch == '}':
			depth--
		case depth == 0 && ifAt < 0 && word(s, i, "if"):
			ifAt = i
		case depth == 0 && ifAt >= 0 && elseAt < 0 && word(s, i, "else"):
			elseAt = i
		}
	}
	if ifAt < 0 || elseAt < 0 {
		return "", "", "", false
	}
	return strings.TrimSpace(s[:ifAt]), strings.TrimSpace(s[ifAt+2 : elseAt]), strings.TrimSpace(s[elseAt+4:]), true
}

// word reports whether s has the keyword w at i, as a whole word.
func word(s string, i int, w string) bool {
	if !strings.HasPrefix(s[i:], w) {
		return false
	}
	ident := func(c byte) bool {
		return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
	}
	return (i == 0 || !ident(s[i-1])) && (i+len(w) == len(s) || !ident(s[i+len(w)]))
}

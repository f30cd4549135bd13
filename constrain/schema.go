package constrain

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
)

type kind uint8

const (
	kRoot    kind = iota // the document: prefix, value, suffix
	kObject              // props (in order), or free keys with addl values
	kArray               // items, minItems..maxItems
	kString              // minLen..maxLen code points
	kNumber              // any JSON number
	kInteger             // -?(0|[1-9][0-9]*)
	kLiteral             // one of lits (enum, const, true, false, null)
	kAnyOf               // one of alts, chosen by what follows
)

// inf is the cost of what cannot be completed; costs saturate at it.
const inf = math.MaxInt32 / 4

func add(a ...int) int {
	s := 0
	for _, x := range a {
		s += x
		if s >= inf {
			return inf
		}
	}
	return s
}

func mul(a, b int) int {
	if a == 0 || b == 0 {
		return 0
	}
	if a >= inf/b {
		return inf
	}
	return a * b
}

type prop struct {
	name     string
	key      []byte // the JSON-encoded name, quotes included
	n        *node
	required bool
}

// node is one compiled schema. ml is the length in bytes of its shortest
// serialization: the automaton's costs are built from it.
type node struct {
	id   int
	kind kind
	ml   int

	props    []prop
	addl     *node // object: schema of other keys' values; nil: none allowed
	firstReq []int // firstReq[i]: first required property index ≥ i (len(props) if none)
	tail     []int // tail[j]: cost of the required properties after j, commas included
	emit     []int // emit[i]: cheapest property written from index i on (key, colon, value, tail)

	items              *node
	minItems, maxItems int // maxItems < 0: no limit

	minLen, maxLen int // maxLen < 0: no limit

	lits   [][]byte // sorted, distinct
	litMin [][]int  // sparse table of literal lengths: litMin[l][i] = min len of lits[i : i+2^l]

	alts []*node

	pre, suf []byte // root: literal text around the value
}

// Grammar is a compiled schema: safe for concurrent use, and it caches masks
// per vocabulary, so reuse it for requests with the same schema.
type Grammar struct {
	root  *node
	nodes []*node
	anyAt []*node // any JSON value nested d levels below, by d
	needs [256]bool

	cache cacheSet
}

const (
	maxSchemaDepth = 32
	maxNodes       = 20000
	maxCount       = 1 << 20
	anyDepth       = 16
)

// Annotations and keywords that carry no constraint.
var ignored = map[string]bool{"title": true, "description": true, "default": true, "examples": true,
	"$schema": true, "$id": true, "$comment": true, "$defs": true, "definitions": true,
	"deprecated": true, "readOnly": true, "writeOnly": true}

var supported = map[string]bool{"type": true, "properties": true, "required": true, "additionalProperties": true,
	"enum": true, "const": true, "items": true, "minItems": true, "maxItems": true, "minLength": true,
	"maxLength": true, "anyOf": true, "uniqueItems": true}

// Compile compiles a JSON Schema document into a grammar for its instances.
func Compile(schema []byte) (*Grammar, error) {
	v, err := parseJSON(schema)
	if err != nil {
		return nil, err
	}
	return compileWrapped(v, nil, nil)
}

// AnyObject is the grammar of any JSON object (response_format json_object).
func AnyObject() *Grammar {
	g := newGrammar()
	top := g.newNode(kObject)
	top.addl = g.any(1)
	g.finishObject(top)
	g.setRoot(top, nil, nil)
	return g
}

// CompileWrapped is Compile for values written between prefix and suffix
// (a model's tool-call markers).
func CompileWrapped(schema []byte, prefix, suffix string) (*Grammar, error) {
	v, err := parseJSON(schema)
	if err != nil {
		return nil, err
	}
	return compileWrapped(v, []byte(prefix), []byte(suffix))
}

func compileWrapped(v value, pre, suf []byte) (*Grammar, error) {
	g := newGrammar()
	top, err := g.compile(v, "", 0)
	if err != nil {
		return nil, err
	}
	if top.ml >= inf {
		return nil, fmt.Errorf("%w: no value validates", ErrUnsatisfiable)
	}
	g.setRoot(top, pre, suf)
	return g, nil
}

func newGrammar() *Grammar {
	return &Grammar{}
}

func (g *Grammar) newNode(k kind) *node {
	n := &node{id: len(g.nodes), kind: k, maxItems: -1, maxLen: -1}
	g.nodes = append(g.nodes, n)
	return n
}

func (g *Grammar) setRoot(top *node, pre, suf []byte) {
	r := g.newNode(kRoot)
	r.items, r.pre, r.suf = top, pre, suf
	r.ml = add(len(pre), top.ml, len(suf))
	g.root = r
	for _, n := range g.nodes {
		for _, p := range n.props {
			for _, c := range p.key {
				g.needs[c] = true
			}
		}
		for _, l := range n.lits {
			for _, c := range l {
				g.needs[c] = true
			}
		}
	}
	for _, c := range append(slices.Clone(pre), suf...) {
		g.needs[c] = true
	}
	for _, c := range []byte(`{}[],:"0-`) {
		g.needs[c] = true
	}
}

// any is the node of any JSON value d levels below the top.
func (g *Grammar) any(d int) *node {
	for len(g.anyAt) <= d {
		g.anyAt = append(g.anyAt, nil)
	}
	if g.anyAt[d] != nil {
		return g.anyAt[d]
	}
	n := g.newNode(kAnyOf)
	g.anyAt[d] = n
	str := g.newNode(kString)
	str.ml = 2
	num := g.newNode(kNumber)
	num.ml = 1
	lit := g.literal([][]byte{[]byte("true"), []byte("false"), []byte("null")})
	n.alts = []*node{str, num, lit}
	if d < anyDepth {
		obj := g.newNode(kObject)
		obj.addl = g.any(d + 1)
		g.finishObject(obj)
		arr := g.newNode(kArray)
		arr.items = g.any(d + 1)
		arr.ml = 2
		n.alts = append(n.alts, obj, arr)
	}
	n.ml = 1
	return n
}

func (g *Grammar) literal(lits [][]byte) *node {
	n := g.newNode(kLiteral)
	sort.Slice(lits, func(i, j int) bool { return bytes.Compare(lits[i], lits[j]) < 0 })
	lits = slices.CompactFunc(lits, bytes.Equal)
	n.lits = lits
	lens := make([]int, len(lits))
	n.ml = inf
	for i, l := range lits {
		lens[i] = len(l)
		n.ml = min(n.ml, len(l))
	}
	n.litMin = [][]int{lens}
	for w := 1; 2*w <= len(lits); w *= 2 {
		prev := n.litMin[len(n.litMin)-1]
		next := make([]int, len(lits)-2*w+1)
		for i := range next {
			next[i] = min(prev[i], prev[i+w])
		}
		n.litMin = append(n.litMin, next)
	}
	return n
}

// litRangeMin is the shortest literal length in lits[lo:hi].
func (n *node) litRangeMin(lo, hi int) int {
	if lo >= hi {
		return inf
	}
	l := 0
	for 1<<(l+1) <= hi-lo {
		l++
	}
	return min(n.litMin[l][lo], n.litMin[l][hi-(1<<l)])
}

func (g *Grammar) finishObject(n *node) {
	P := len(n.props)
	n.firstReq = make([]int, P+1)
	n.firstReq[P] = P
	for i := P - 1; i >= 0; i-- {
		n.firstReq[i] = n.firstReq[i+1]
		if n.props[i].required {
			n.firstReq[i] = i
		}
	}
	n.tail = make([]int, P)
	for j := P - 1; j >= 0; j-- {
		if j+1 < P {
			n.tail[j] = n.tail[j+1]
			if p := n.props[j+1]; p.required {
				n.tail[j] = add(n.tail[j], 1, len(p.key), 1, p.n.ml)
			}
		}
	}
	n.emit = make([]int, P+1)
	for i := 0; i <= P; i++ {
		n.emit[i] = inf
		for j := i; j < P && j <= n.firstReq[i]; j++ {
			p := n.props[j]
			n.emit[i] = min(n.emit[i], add(len(p.key), 1, p.n.ml, n.tail[j]))
		}
	}
	switch {
	case P == 0:
		n.ml = 2
	case n.firstReq[0] == P:
		n.ml = 2
	default:
		n.ml = add(n.emit[0], 2)
	}
}

func (g *Grammar) compile(v value, path string, depth int) (*node, error) {
	if len(g.nodes) > maxNodes {
		return nil, fmt.Errorf("%w: schema has more than %d subschemas", ErrUnsupported, maxNodes)
	}
	if depth > maxSchemaDepth {
		return nil, fmt.Errorf("%w: %s: schemas nested deeper than %d", ErrUnsupported, at(path), maxSchemaDepth)
	}
	switch v.kind {
	case 't':
		return g.any(0), nil
	case 'f':
		return nil, fmt.Errorf("%w: %s: the schema false", ErrUnsatisfiable, at(path))
	case 'o':
	default:
		return nil, fmt.Errorf("%w: %s: a schema must be an object or a boolean", ErrSchema, at(path))
	}
	kw := map[string]value{}
	for _, m := range v.obj {
		if ignored[m.key] {
			continue
		}
		if !supported[m.key] {
			return nil, fmt.Errorf("%w: %s: keyword %q is not supported", ErrUnsupported, at(path), m.key)
		}
		kw[m.key] = m.val
	}
	if u, ok := kw["uniqueItems"]; ok {
		if u.kind == 't' {
			return nil, fmt.Errorf("%w: %s: keyword \"uniqueItems\" is not supported (only false)", ErrUnsupported, at(path))
		}
		if u.kind != 'f' {
			return nil, fmt.Errorf("%w: %s: uniqueItems must be a boolean", ErrSchema, at(path))
		}
		delete(kw, "uniqueItems")
	}
	if any, ok := kw["anyOf"]; ok {
		if len(kw) > 1 {
			var others []string
			for k := range kw {
				if k != "anyOf" {
					others = append(others, fmt.Sprintf("%q", k))
				}
			}
			sort.Strings(others)
			return nil, fmt.Errorf("%w: %s: anyOf together with %s (put them inside each alternative)", ErrUnsupported, at(path), strings.Join(others, ", "))
		}
		if any.kind != 'a' || len(any.arr) == 0 {
			return nil, fmt.Errorf("%w: %s: anyOf must be a non-empty list of schemas", ErrSchema, at(path))
		}
		n := g.newNode(kAnyOf)
		n.ml = inf
		var firstErr error
		for i, x := range any.arr {
			a, err := g.compile(x, fmt.Sprintf("%s/anyOf/%d", path, i), depth+1)
			if err != nil {
				if isUnsat(err) {
					firstErr = err
					continue // an impossible alternative is left out
				}
				return nil, err
			}
			n.alts = append(n.alts, a)
			n.ml = min(n.ml, a.ml)
		}
		if len(n.alts) == 0 {
			return nil, firstErr
		}
		return n, nil
	}
	types, err := schemaTypes(kw, path)
	if err != nil {
		return nil, err
	}
	var alts []*node
	for _, t := range types {
		n, err := g.compileType(t, kw, path, depth)
		if err != nil {
			if isUnsat(err) && len(types) > 1 {
				continue
			}
			return nil, err
		}
		alts = append(alts, n)
	}
	var n *node
	switch len(alts) {
	case 0:
		return nil, fmt.Errorf("%w: %s: no type can be satisfied", ErrUnsatisfiable, at(path))
	case 1:
		n = alts[0]
	default:
		n = g.newNode(kAnyOf)
		n.alts, n.ml = alts, inf
		for _, a := range alts {
			n.ml = min(n.ml, a.ml)
		}
	}
	e, hasEnum := kw["enum"]
	c, hasConst := kw["const"]
	if !hasEnum && !hasConst {
		return n, nil
	}
	var cands []value
	if hasEnum {
		if e.kind != 'a' {
			return nil, fmt.Errorf("%w: %s: enum must be a list", ErrSchema, at(path))
		}
		cands = e.arr
	}
	if hasConst {
		if hasEnum {
			cb := c.appendJSON(nil)
			var keep []value
			for _, x := range cands {
				if bytes.Equal(x.appendJSON(nil), cb) {
					keep = append(keep, x)
				}
			}
			cands = keep
		} else {
			cands = []value{c}
		}
	}
	var lits [][]byte
	for _, x := range cands {
		if n.valid(x) {
			lits = append(lits, x.appendJSON(nil))
		}
	}
	if len(lits) == 0 {
		return nil, fmt.Errorf("%w: %s: no enum or const value matches the rest of the schema", ErrUnsatisfiable, at(path))
	}
	return g.literal(lits), nil
}

func isUnsat(err error) bool { return errors.Is(err, ErrUnsatisfiable) }

func at(path string) string {
	if path == "" {
		return "at the root"
	}
	return "at " + path
}

var allTypes = []string{"object", "array", "string", "number", "integer", "boolean", "null"}

// schemaTypes lists the types a schema allows: its type keyword, or what its
// other keywords imply, or all of them.
func schemaTypes(kw map[string]value, path string) ([]string, error) {
	t, ok := kw["type"]
	if !ok {
		_, hasEnum := kw["enum"]
		_, hasConst := kw["const"]
		var ts []string
		if has(kw, "properties", "required", "additionalProperties") {
			ts = append(ts, "object")
		}
		if has(kw, "items", "minItems", "maxItems") {
			ts = append(ts, "array")
		}
		if has(kw, "minLength", "maxLength") {
			ts = append(ts, "string")
		}
		if len(ts) == 0 || hasEnum || hasConst {
			return allTypes, nil
		}
		return ts, nil
	}
	var ts []string
	switch t.kind {
	case 's':
		ts = []string{t.str}
	case 'a':
		for _, x := range t.arr {
			if x.kind != 's' {
				return nil, fmt.Errorf("%w: %s: type must be a string or a list of strings", ErrSchema, at(path))
			}
			ts = append(ts, x.str)
		}
	default:
		return nil, fmt.Errorf("%w: %s: type must be a string or a list of strings", ErrSchema, at(path))
	}
	if len(ts) == 0 {
		return nil, fmt.Errorf("%w: %s: type is an empty list", ErrUnsatisfiable, at(path))
	}
	for _, x := range ts {
		if !slices.Contains(allTypes, x) {
			return nil, fmt.Errorf("%w: %s: unknown type %q", ErrSchema, at(path), x)
		}
	}
	slices.Sort(ts)
	ts = slices.Compact(ts)
	if slices.Contains(ts, "number") {
		ts = slices.DeleteFunc(ts, func(s string) bool { return s == "integer" })
	}
	return ts, nil
}

func has(kw map[string]value, keys ...string) bool {
	for _, k := range keys {
		if _, ok := kw[k]; ok {
			return true
		}
	}
	return false
}

// count reads a non-negative integer keyword; def when absent.
func count(kw map[string]value, key, path string, def int) (int, error) {
	v, ok := kw[key]
	if !ok {
		return def, nil
	}
	if v.kind != 'n' || !isInteger(v.num) {
		return 0, fmt.Errorf("%w: %s: %s must be a non-negative integer", ErrSchema, at(path), key)
	}
	f, err := v.num.Float64()
	if err != nil || f < 0 {
		return 0, fmt.Errorf("%w: %s: %s must be a non-negative integer", ErrSchema, at(path), key)
	}
	if f > maxCount {
		return 0, fmt.Errorf("%w: %s: %s above %d", ErrUnsupported, at(path), key, maxCount)
	}
	return int(f), nil
}

func (g *Grammar) compileType(t string, kw map[string]value, path string, depth int) (*node, error) {
	switch t {
	case "null":
		return g.literal([][]byte{[]byte("null")}), nil
	case "boolean":
		return g.literal([][]byte{[]byte("true"), []byte("false")}), nil
	case "number":
		n := g.newNode(kNumber)
		n.ml = 1
		return n, nil
	case "integer":
		n := g.newNode(kInteger)
		n.ml = 1
		return n, nil
	case "string":
		n := g.newNode(kString)
		var err error
		if n.minLen, err = count(kw, "minLength", path, 0); err != nil {
			return nil, err
		}
		if n.maxLen, err = count(kw, "maxLength", path, -1); err != nil {
			return nil, err
		}
		if n.maxLen >= 0 && n.maxLen < n.minLen {
			return nil, fmt.Errorf("%w: %s: maxLength %d < minLength %d", ErrUnsatisfiable, at(path), n.maxLen, n.minLen)
		}
		n.ml = 2 + n.minLen
		return n, nil
	case "array":
		n := g.newNode(kArray)
		var err error
		if n.minItems, err = count(kw, "minItems", path, 0); err != nil {
			return nil, err
		}
		if n.maxItems, err = count(kw, "maxItems", path, -1); err != nil {
			return nil, err
		}
		if n.maxItems >= 0 && n.maxItems < n.minItems {
			return nil, fmt.Errorf("%w: %s: maxItems %d < minItems %d", ErrUnsatisfiable, at(path), n.maxItems, n.minItems)
		}
		items, ok := kw["items"]
		if !ok {
			n.items = g.any(0)
		} else {
			if items.kind == 'a' {
				return nil, fmt.Errorf("%w: %s: items as a list (tuples) is not supported", ErrUnsupported, at(path))
			}
			it, err := g.compile(items, path+"/items", depth+1)
			if err != nil {
				if !isUnsat(err) || n.minItems > 0 {
					return nil, err
				}
				n.maxItems = 0 // no item can exist: only []
				it = g.any(0)
			}
			n.items = it
		}
		n.ml = 2
		if n.minItems > 0 {
			n.ml = add(2, mul(n.minItems, n.items.ml), n.minItems-1)
		}
		return n, nil
	case "object":
		n := g.newNode(kObject)
		var req []string
		if r, ok := kw["required"]; ok {
			if r.kind != 'a' {
				return nil, fmt.Errorf("%w: %s: required must be a list of strings", ErrSchema, at(path))
			}
			for _, x := range r.arr {
				if x.kind != 's' {
					return nil, fmt.Errorf("%w: %s: required must be a list of strings", ErrSchema, at(path))
				}
				req = append(req, x.str)
			}
		}
		if p, ok := kw["properties"]; ok {
			if p.kind != 'o' {
				return nil, fmt.Errorf("%w: %s: properties must be an object", ErrSchema, at(path))
			}
			for _, m := range p.obj {
				c, err := g.compile(m.val, path+"/properties/"+m.key, depth+1)
				if err != nil {
					if isUnsat(err) && !slices.Contains(req, m.key) {
						continue // an optional property that cannot exist is left out
					}
					return nil, err
				}
				n.props = append(n.props, prop{name: m.key, key: appendString(nil, m.key), n: c, required: slices.Contains(req, m.key)})
			}
		}
		for _, r := range req {
			if n.prop(r) == nil {
				return nil, fmt.Errorf("%w: %s: required names %q, which properties does not declare", ErrUnsupported, at(path), r)
			}
		}
		n.addl = g.any(0)
		if a, ok := kw["additionalProperties"]; ok {
			switch a.kind {
			case 'f':
				n.addl = nil
			case 't':
			default:
				c, err := g.compile(a, path+"/additionalProperties", depth+1)
				if err != nil {
					if !isUnsat(err) {
						return nil, err
					}
					c = nil
				}
				n.addl = c
			}
		}
		g.finishObject(n)
		return n, nil
	}
	return nil, fmt.Errorf("%w: %s: unknown type %q", ErrSchema, at(path), t)
}

package tasks

import (
	"fmt"
	"hash/fnv"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"github.com/nikolalohinski/gonja/v2/builtins"
	"github.com/nikolalohinski/gonja/v2/config"
	"github.com/nikolalohinski/gonja/v2/exec"
	"github.com/nikolalohinski/gonja/v2/loaders"
)

// Jinja rendering for promptsource templates, on github.com/nikolalohinski/gonja/v2.
//
// gonja covers most of what the shared templates use (if/elif/else/for/set, loop, slices such as
// [:-1] and [span2_index:], Python string methods such as .lower() and .split(" "), and the
// join, replace, lower, trim, length, first, last, int filters). What promptsource's Jinja2
// environment has and gonja lacks or does differently is supplied here:
//   - round: Python's round() (ties to even, so 2.5|round is 2.0; gonja rounds half away from zero);
//   - truncate: Jinja2's (cut at the last " " before the limit, leeway 5, no trimming);
//   - choice, most_frequent, highlight: promptsource's own filters; choice is deterministic here
//     (promptsource draws with random.choice) so that a render is reproducible;
//   - zip: the global promptsource adds;
//   - Python methods: gonja's str methods return a private string type that never equals a
//     string (`span2_text.lower() == "they"` was always false), its split() without arguments
//     does not split on whitespace, and lists lack index() and count(); see pyMethods.
// The environment is Jinja2's default one: no autoescape, no trim_blocks/lstrip_blocks, the
// template's final newline dropped, undefined names render as "".
//
// Known difference: gonja has a single nil, so a JSON null renders as "" where Jinja2 would print
// "None" (no task in shared/data has a null).

// textVarLength is promptsource's TEXT_VAR_LENGTH: every {{ }} output is cut to this many
// characters (plus a leeway of 5) with `| string | truncate(2048)`.
const textVarLength = 2048

var (
	jinjaEnvOnce sync.Once
	jinjaEnv     *exec.Environment
	jinjaCache   sync.Map // jinjaKey → *compiled
)

type jinjaKey struct {
	strict bool
	src    string
}

type compiled struct {
	tpl *exec.Template
	err error
}

func environment() *exec.Environment {
	jinjaEnvOnce.Do(func() {
		filters := exec.NewFilterSet(map[string]exec.FilterFunction{})
		filters.Update(builtins.Filters)
		must := func(err error) {
			if err != nil {
				panic(err) // programming error: a filter name clash
			}
		}
		must(filters.Replace("round", filterPyRound))
		must(filters.Replace("truncate", filterPyTruncate))
		must(filters.Register("choice", filterChoice))
		must(filters.Register("most_frequent", filterMostFrequent))
		must(filters.Register("highlight", filterHighlight))
		ctx := exec.EmptyContext().Update(builtins.GlobalFunctions).Update(builtins.GlobalVariables)
		ctx.Set("zip", zipFunction)
		jinjaEnv = &exec.Environment{
			Context:           ctx,
			Filters:           filters,
			Tests:             builtins.Tests,
			ControlStructures: builtins.ControlStructures,
			Methods:           pyMethods(),
		}
	})
	return jinjaEnv
}

// gonjaStrMethods are the Python str methods gonja implements.
var gonjaStrMethods = strings.Fields(`capitalize capwords casefold center count encode endswith
	expandtabs find format format_map isalnum isalpha isascii isdecimal isdigit islower isnumeric
	isprintable isspace istitle isupper join ljust lower lstrip partition removeprefix removesuffix
	replace rfind rjust rpartition rsplit rstrip split splitlines startswith strip swapcase title
	upper zfill`)

// pyMethods is gonja's Python-method table with two fixes. gonja's str methods return its own
// PyString type, which never compares equal to a string (so `s.lower() == "they"` is always
// false): their results are converted to plain Go values. And Python's str.split() and
// list.index()/count(), which promptsource templates use, are added or corrected.
func pyMethods() exec.Methods {
	m := builtins.Methods
	str := map[string]exec.Method[string]{}
	for _, name := range gonjaStrMethods {
		fn, ok := m.Str.Get(name)
		if !ok {
			continue
		}
		str[name] = func(self string, selfValue *exec.Value, args *exec.VarArgs) (any, error) {
			v, err := fn(self, selfValue, args)
			return plainValue(v), err
		}
	}
	str["split"] = strSplit
	list := map[string]exec.Method[[]any]{"index": listIndex, "count": listCount}
	for _, name := range []string{"append", "reverse", "copy"} {
		if fn, ok := m.List.Get(name); ok {
			list[name] = fn
		}
	}
	m.Str = exec.NewMethodSet(str)
	m.List = exec.NewMethodSet(list)
	return m
}

// plainValue converts named string types (and slices of them) to string and []any.
func plainValue(v any) any {
	if v == nil {
		return nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String:
		return rv.String()
	case reflect.Slice, reflect.Array:
		if _, ok := v.([]byte); ok {
			return v
		}
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = plainValue(rv.Index(i).Interface())
		}
		return out
	}
	return v
}

// strSplit is Python's str.split(sep=None, maxsplit=-1).
func strSplit(self string, _ *exec.Value, args *exec.VarArgs) (any, error) {
	var sep *exec.Value
	maxsplit := -1
	if err := args.Take(
		exec.KeywordArgument("sep", exec.AsValue(nil), valueArg(&sep)),
		exec.KeywordArgument("maxsplit", exec.AsValue(-1), intArg(&maxsplit)),
	); err != nil {
		return nil, exec.ErrInvalidCall(err)
	}
	var parts []string
	if sep == nil || sep.IsNil() {
		// Runs of whitespace separate; leading and trailing whitespace is dropped.
		rest := strings.TrimLeftFunc(self, isPySpace)
		for rest != "" && (maxsplit < 0 || len(parts) < maxsplit) {
			i := strings.IndexFunc(rest, isPySpace)
			if i < 0 {
				break
			}
			parts = append(parts, rest[:i])
			rest = strings.TrimLeftFunc(rest[i:], isPySpace)
		}
		if rest != "" {
			parts = append(parts, rest)
		}
	} else {
		s := sep.String()
		if s == "" {
			return nil, exec.ErrInvalidCall(fmt.Errorf("split: empty separator"))
		}
		if maxsplit < 0 {
			parts = strings.Split(self, s)
		} else {
			parts = strings.SplitN(self, s, maxsplit+1)
		}
	}
	out := make([]any, len(parts))
	for i, p := range parts {
		out[i] = p
	}
	return out, nil
}

// listIndex is Python's list.index(x): the first position of x; an error when absent.
func listIndex(self []any, selfValue *exec.Value, args *exec.VarArgs) (any, error) {
	var x *exec.Value
	if err := args.Take(exec.PositionalArgument("x", nil, valueArg(&x))); err != nil {
		return nil, exec.ErrInvalidCall(err)
	}
	for i, it := range listItems(selfValue) {
		if it.EqualValueTo(x) {
			return i, nil
		}
	}
	return nil, fmt.Errorf("%s is not in list", x.String())
}

// listCount is Python's list.count(x).
func listCount(self []any, selfValue *exec.Value, args *exec.VarArgs) (any, error) {
	var x *exec.Value
	if err := args.Take(exec.PositionalArgument("x", nil, valueArg(&x))); err != nil {
		return nil, exec.ErrInvalidCall(err)
	}
	n := 0
	for _, it := range listItems(selfValue) {
		if it.EqualValueTo(x) {
			n++
		}
	}
	return n, nil
}

func isPySpace(r rune) bool { return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f) }

// compileJinja parses src once and caches it. strict makes undefined names and missing items
// errors (used to diagnose templates that need fields the data lacks).
func compileJinja(src string, strict bool) (*exec.Template, error) {
	key := jinjaKey{strict, src}
	if c, ok := jinjaCache.Load(key); ok {
		return c.(*compiled).tpl, c.(*compiled).err
	}
	c := &compiled{}
	c.tpl, c.err = compileUncached(src, strict)
	jinjaCache.Store(key, c)
	return c.tpl, c.err
}

func compileUncached(src string, strict bool) (tpl *exec.Template, err error) {
	defer func() {
		if r := recover(); r != nil { // gonja's parser may panic on odd input
			tpl, err = nil, fmt.Errorf("jinja parse: panic: %v", r)
		}
	}()
	cfg := config.New()
	cfg.StrictUndefined = strict
	// Templates live in memory only: no file system loader, so {% include %} cannot read files.
	loader, err := loaders.NewMemoryLoader(map[string]string{"/template": src})
	if err != nil {
		return nil, err
	}
	return exec.NewTemplate("/template", cfg, loader, environment())
}

// renderJinja renders src with vars (which it does not modify).
func renderJinja(src string, vars map[string]any, strict bool) (out string, err error) {
	tpl, err := compileJinja(src, strict)
	if err != nil {
		return "", err
	}
	defer func() {
		if r := recover(); r != nil { // never let a template panic take the caller down
			out, err = "", fmt.Errorf("jinja render: panic: %v", r)
		}
	}()
	data := make(map[string]any, len(vars))
	for k, v := range vars {
		data[k] = v
	}
	return tpl.ExecuteToString(exec.NewContext(data))
}

// addTruncation applies promptsource's Template.apply(truncate=True): every "}}" becomes
// " | string | truncate(2048) }}".
func addTruncation(jinja string) string {
	return strings.ReplaceAll(jinja, "}}", " | string | truncate("+strconv.Itoa(textVarLength)+") }}")
}

// pyStrip is Python's str.strip(): it removes what str.isspace() calls whitespace, which
// includes the ASCII separators \x1c-\x1f that unicode.IsSpace leaves.
func pyStrip(s string) string {
	return strings.TrimFunc(s, isPySpace)
}

func intArg(p *int) exec.ArgumentTransmuter {
	return func(v *exec.Value) error { *p = v.Integer(); return nil }
}
func boolArg(p *bool) exec.ArgumentTransmuter {
	return func(v *exec.Value) error { *p = v.Bool(); return nil }
}
func stringArg(p *string) exec.ArgumentTransmuter {
	return func(v *exec.Value) error { *p = v.String(); return nil }
}
func valueArg(p **exec.Value) exec.ArgumentTransmuter {
	return func(v *exec.Value) error { *p = v; return nil }
}

// filterPyRound is Jinja2's round(value, precision=0, method='common'), where 'common' is
// Python's round(): correctly rounded, ties to even, an int stays an int.
func filterPyRound(_ *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	var precision int
	var method string
	if err := params.Take(
		exec.KeywordArgument("precision", exec.AsValue(0), intArg(&precision)),
		exec.KeywordArgument("method", exec.AsValue("common"), stringArg(&method)),
	); err != nil {
		return exec.AsValue(exec.ErrInvalidCall(err))
	}
	if !in.IsNumber() {
		return exec.AsValue(fmt.Errorf("round: %s is not a number", in.String()))
	}
	switch method {
	case "common":
		if in.IsInteger() && precision >= 0 {
			return exec.AsValue(in.Integer())
		}
		return exec.AsValue(pyRoundFloat(in.Float(), precision))
	case "floor", "ceil":
		op := math.Floor
		if method == "ceil" {
			op = math.Ceil
		}
		f := math.Pow(10, float64(precision))
		return exec.AsValue(op(in.Float()*f) / f)
	}
	return exec.AsValue(fmt.Errorf("round: method must be common, floor or ceil, not %q", method))
}

// pyRoundFloat is Python's round(x, ndigits) for floats: the nearest multiple of 10^-ndigits
// to the exact binary value, ties to even.
func pyRoundFloat(x float64, ndigits int) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	if ndigits == 0 {
		return math.RoundToEven(x)
	}
	if ndigits > 0 {
		// strconv rounds the exact decimal expansion, ties to even: what Python does.
		r, err := strconv.ParseFloat(strconv.FormatFloat(x, 'f', ndigits, 64), 64)
		if err != nil {
			return x
		}
		return r
	}
	p := math.Pow(10, float64(-ndigits))
	return math.RoundToEven(x/p) * p
}

// filterPyTruncate is Jinja2's truncate(s, length=255, killwords=False, end='...', leeway=5).
func filterPyTruncate(_ *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	var length, leeway int
	var killwords bool
	var end string
	if err := params.Take(
		exec.KeywordArgument("length", exec.AsValue(255), intArg(&length)),
		exec.KeywordArgument("killwords", exec.AsValue(false), boolArg(&killwords)),
		exec.KeywordArgument("end", exec.AsValue("..."), stringArg(&end)),
		exec.KeywordArgument("leeway", exec.AsValue(5), intArg(&leeway)),
	); err != nil {
		return exec.AsValue(exec.ErrInvalidCall(err))
	}
	return exec.AsValue(pyTruncate(in.String(), length, killwords, end, leeway))
}

func pyTruncate(s string, length int, killwords bool, end string, leeway int) string {
	runes := []rune(s)
	endLen := len([]rune(end))
	if length < endLen || leeway < 0 || len(runes) <= length+leeway {
		return s
	}
	head := string(runes[:length-endLen])
	if !killwords {
		if i := strings.LastIndex(head, " "); i >= 0 { // str.rsplit(" ", 1)[0]
			head = head[:i]
		}
	}
	return head + end
}

// filterChoice is promptsource's choice filter. promptsource picks with random.choice; here the
// pick is a hash of the list's contents, so the same example always renders the same way.
func filterChoice(_ *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	if err := params.Take(); err != nil {
		return exec.AsValue(exec.ErrInvalidCall(err))
	}
	items := listItems(in)
	if len(items) == 0 {
		return exec.AsValue(fmt.Errorf("choice: empty or non-list input %s", in.String()))
	}
	h := fnv.New64a()
	for _, it := range items {
		h.Write([]byte(it.String()))
		h.Write([]byte{0})
	}
	return items[h.Sum64()%uint64(len(items))]
}

// filterMostFrequent is promptsource's most_frequent: the items with the highest count, in
// order of first appearance.
func filterMostFrequent(_ *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	if err := params.Take(); err != nil {
		return exec.AsValue(exec.ErrInvalidCall(err))
	}
	items := listItems(in)
	if len(items) == 0 {
		return exec.AsValue(nil)
	}
	count := map[string]int{}
	var order []*exec.Value
	best := 0
	for _, it := range items {
		k := it.String()
		if count[k] == 0 {
			order = append(order, it)
		}
		count[k]++
		best = max(best, count[k])
	}
	var out []any
	for _, it := range order {
		if count[it.String()] == best {
			out = append(out, it.Interface())
		}
	}
	return exec.AsValue(out)
}

func filterHighlight(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	return exec.AsValue("<span style='color: #F08080'>" + in.String() + "</span>")
}

// zipFunction is Python's zip over lists: a list of tuples (lists), as long as the shortest input.
func zipFunction(_ *exec.Evaluator, params *exec.VarArgs) ([]any, error) {
	if len(params.KwArgs) > 0 {
		return nil, exec.ErrInvalidCall(fmt.Errorf("zip takes no keyword arguments"))
	}
	lists := make([][]*exec.Value, len(params.Args))
	n := -1
	for i, a := range params.Args {
		lists[i] = listItems(a)
		if n < 0 || len(lists[i]) < n {
			n = len(lists[i])
		}
	}
	out := make([]any, 0, max(n, 0))
	for j := 0; j < n; j++ {
		tuple := make([]any, len(lists))
		for i := range lists {
			tuple[i] = lists[i][j].Interface()
		}
		out = append(out, tuple)
	}
	return out, nil
}

// listItems returns the elements of an iterable value (a string iterates by character).
func listItems(v *exec.Value) []*exec.Value {
	if v == nil || v.IsNil() || !v.IsIterable() {
		return nil
	}
	var out []*exec.Value
	v.Iterate(func(_, _ int, key, value *exec.Value) bool {
		out = append(out, key)
		return true
	}, func() {})
	return out
}

package tokenizer

// postProcessor adds special tokens around the ids of one sequence (called only when
// special tokens are requested).
type postProcessor interface {
	process(ids []int) []int
}

type postNoop struct{}

func (postNoop) process(ids []int) []int { return ids }

// postTemplate is TemplateProcessing's single template, resolved to id lists: the ids of
// the sequence go where seq is -1... represented as parts.
type postTemplate struct {
	parts [][]int // nil entry: the sequence itself
}

func (p postTemplate) process(ids []int) []int {
	n := len(ids)
	for _, x := range p.parts {
		n += len(x)
	}
	out := make([]int, 0, n)
	for _, x := range p.parts {
		if x == nil {
			out = append(out, ids...)
		} else {
			out = append(out, x...)
		}
	}
	return out
}

// prefixIDs and suffixIDs return the special ids the template puts before/after the
// sequence (used for BOS/EOS discovery).
func (p postTemplate) prefixIDs() []int {
	var out []int
	for _, x := range p.parts {
		if x == nil {
			break
		}
		out = append(out, x...)
	}
	return out
}

func (p postTemplate) suffixIDs() []int {
	var out []int
	seen := false
	for _, x := range p.parts {
		if x == nil {
			seen = true
			continue
		}
		if seen {
			out = append(out, x...)
		}
	}
	return out
}

type postSequence []postProcessor

func (s postSequence) process(ids []int) []int {
	for _, p := range s {
		ids = p.process(ids)
	}
	return ids
}

package model

// Constraint restricts what a sequence may generate (structured output): the
// sequence masks its logits with it before every sample and tells it each
// token chosen. roe/constrain implements it.
type Constraint interface {
	// Mask sets to -Inf the logits ([V]) of the tokens that may not come
	// next; left is the number of tokens the sequence may still generate,
	// this one included.
	Mask(logits []float32, left int)
	// Accept advances past the sampled token (a stop token included).
	Accept(id int) error
}

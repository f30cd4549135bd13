// Package constrain is structured output by constrained decoding: a JSON
// Schema (or "any JSON object") is compiled into a byte-level pushdown
// automaton, and at each decoding step every vocabulary token whose bytes
// cannot extend a valid prefix is masked out of the logits.
//
// The supported subset of JSON Schema: type (object, array, string, number,
// integer, boolean, null, and lists of them), properties, required,
// additionalProperties, enum, const, items, minItems, maxItems, minLength,
// maxLength, anyOf, and the annotations title, description, default,
// examples, $schema, $id, $comment, $defs, definitions, deprecated, readOnly,
// writeOnly. Any other keyword (pattern, format, $ref, oneOf, allOf, not,
// minimum, ...) is refused by name with ErrUnsupported.
//
// Generation rules, chosen so that every output validates:
//   - Objects with properties are written with the declared properties only,
//     in declaration order; optional ones may be left out. Objects without
//     properties take any keys, with values of the additionalProperties schema
//     (any JSON when it is absent or true; only {} when it is false).
//   - Numbers have at most 16 integer and 16 fraction digits and a 3-digit
//     exponent; integers are written without fraction or exponent.
//   - Strings are valid UTF-8; \u escapes of surrogates are not produced.
//   - Whitespace between tokens is bounded (1 + 2 per nesting level in each
//     gap), none after the value: the model cannot loop on spaces.
//   - A schema without type keywords and without enum/const is any JSON
//     value; properties/required/additionalProperties imply an object,
//     items/minItems/maxItems an array, minLength/maxLength a string.
//   - Any JSON nests at most 16 levels.
//
// Termination is forced: every automaton state knows the length in bytes of
// its shortest completion, and a token is allowed only if that length after it
// fits in the tokens left (every byte has a single-byte token in the
// vocabularies roe accepts for this, so a byte is at most a token). The end of
// sequence token is allowed only in an accepting state. So a generation given
// at least MinTokens tokens always ends in a complete, valid document.
//
// Masks are computed by walking a trie of the vocabulary's token bytes with
// the automaton state, pruning a subtree as soon as its prefix is rejected, and
// cached by state (with the shortest-completion length of each allowed token,
// so that the budget check costs one bitset lookup).
package constrain

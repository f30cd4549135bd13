package tokenizer

// Pre-tokenizers of GGUF byte-level BPE vocabularies, by their tokenizer.ggml.pre name.
// Each name stands for the split rules of the model family's tokenizer.json: the text is
// split by each regex in turn (matches and the text between them both kept, HF Split
// behavior "Isolated"), then every piece is mapped to the byte-level alphabet. Where the
// family's tokenizer.json pattern and llama.cpp's rewrite of it differ only in spelling
// (a case-insensitive group written out, a trailing `|\s+` that cannot change the pieces),
// the tokenizer.json spelling is used: it is what the model was trained with, and the
// GPT-2, Llama 3 and Qwen 2 spellings have fast hand-written matchers.

type ggufPre struct {
	regexes      []string // applied in order; the last one is run by the ByteLevel step
	ignoreMerges bool     // a word that is a whole token is not merged (Llama 3 style)
	addBOS       bool     // add_bos_token default when the file does not say
}

// Patterns with non-ASCII characters are written with escapes: several of their range
// ends (U+1F7D, U+1FBE, U+2126, U+212A...) have canonical singleton decompositions, and an
// editor or tool that normalizes text would silently change them.
const (
	digitsPattern = `\p{N}`

	tekkenPattern  = `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	gpt4oPattern   = `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	qwen35Pattern  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	seedPattern    = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+`
	bloomPattern   = " ?[^(\\s|.,!?\u2026\u3002\uff0c\u3001\u0964\u06d4\u060c)]+"
	cjkPattern     = "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+"
	dsV3CJKPattern = "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+"
	dsV3Pattern    = "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"
	dsLLMLetters   = "\\s?[A-Za-z\u00b5\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u01ba\u01bc-\u01bf\u01c4-\u0293\u0295-\u02af\u0370-\u0373\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c\u038e-\u03a1\u03a3-\u03f5\u03f7-\u0481\u048a-\u052f\u0531-\u0556\u10a0-\u10c5\u13a0-\u13f5\u13f8-\u13fd\u1c90-\u1cba\u1cbd-\u1cbf\u1d00-\u1d2b\u1d6b-\u1d77\u1d79-\u1d9a\u1e00-\u1f15\u1f18-\u1f1d\u1f20-\u1f45\u1f48-\u1f4d\u1f50-\u1f57\u1f59\u1f5b\u1f5d\u1f5f-\u1f7d\u1f80-\u1fb4\u1fb6-\u1fbc\u1fbe\u1fc2-\u1fc4\u1fc6-\u1fcc\u1fd0-\u1fd3\u1fd6-\u1fdb\u1fe0-\u1fec\u1ff2-\u1ff4\u1ff6-\u1ffc\u2102\u2107\u210a-\u2113\u2115\u2119-\u211d\u2124\u2126\u2128\u212a-\u212d\u212f-\u2134\u2139\u213c-\u213f\u2145-\u2149\u214e\u2183\u2184\u2c00-\u2c7b\u2c7e-\u2ce4\u2ceb-\u2cee\u2cf2\u2cf3\ua640-\ua66d\ua680-\ua69b\ua722-\ua76f\ua771-\ua787\ua78b-\ua78e\uab70-\uabbf\ufb00-\ufb06\ufb13-\ufb17\uff21-\uff3a\uff41-\uff5a\U00010400-\U0001044f\U000104b0-\U000104d3\U000104d8-\U000104fb\U00010c80-\U00010cb2\U00010cc0-\U00010cf2\U000118a0-\U000118df\U0001e900-\U0001e943]+"
	dsLLMPunct     = "\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+"
	falconPunct    = "[\\p{P}\\$\\+<=>\\^~\\|`]+"
)

var ggufPres = map[string]ggufPre{}

func init() {
	add := func(p ggufPre, names ...string) {
		for _, n := range names {
			ggufPres[n] = p
		}
	}
	add(ggufPre{regexes: []string{`[\p{P}\$\+<=>\^~\|]+`, gpt2Pattern, `\p{N}+`, `[0-9][0-9][0-9]`}}, "default", "")
	add(ggufPre{regexes: []string{llama3Pattern}, ignoreMerges: true, addBOS: true},
		"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2")
	add(ggufPre{regexes: []string{llama3Pattern}}, "dbrx", "smaug-bpe", "chatglm-bpe", "glm4")
	add(ggufPre{regexes: []string{`[\r\n]`, dsLLMLetters, dsLLMPunct, `\s+$`, cjkPattern, `\p{N}+`}}, "deepseek-llm")
	add(ggufPre{regexes: []string{`[\r\n]`, `\s?\p{L}+`, `\s?\p{P}+`, cjkPattern, digitsPattern}}, "deepseek-coder")
	add(ggufPre{regexes: []string{`\p{N}{1,3}`, dsV3CJKPattern, dsV3Pattern}}, "deepseek-v3", "hunyuan-dense")
	add(ggufPre{regexes: []string{falconPunct, gpt2Pattern, `[0-9][0-9][0-9]`}}, "falcon")
	add(ggufPre{regexes: []string{digitsPattern, gpt2Pattern}},
		"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b")
	add(ggufPre{regexes: []string{gpt2Pattern}},
		"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0",
		"mellum", "exaone4", "mpt", "olmo", "jais", "trillion", "granite-docling")
	add(ggufPre{regexes: []string{qwen2Pattern}},
		"qwen2", "deepseek-r1-qwen", "megrez", "stablelm2", "hunyuan", "kormo")
	add(ggufPre{regexes: []string{qwen35Pattern}}, "qwen35")
	add(ggufPre{regexes: []string{bloomPattern}}, "poro-chat", "bloom", "gpt3-finnish")
	add(ggufPre{regexes: []string{bloomPattern, digitsPattern}}, "viking")
	add(ggufPre{regexes: []string{tekkenPattern}, ignoreMerges: true, addBOS: true}, "tekken")
	add(ggufPre{regexes: []string{gpt4oPattern}}, "gpt-4o", "llama4")
	add(ggufPre{regexes: []string{seedPattern}}, "seed-coder")
}

// ggufPreTokenizer builds the pre-tokenizer of a byte-level vocabulary (split rules, then
// the byte-level mapping).
func ggufPreTokenizer(p ggufPre) (preTokenizer, error) {
	var seq preSequence
	for i, src := range p.regexes {
		last := i == len(p.regexes)-1
		if src == digitsPattern && !last {
			seq = append(seq, preCharSplit{isNumeric, behIsolated})
			continue
		}
		re, err := compileRegex(src)
		if err != nil {
			return nil, err
		}
		if last {
			seq = append(seq, preByteLevel{re: re})
		} else {
			seq = append(seq, preSplit{re, behIsolated})
		}
	}
	if len(seq) == 1 {
		return seq[0], nil
	}
	return seq, nil
}

// Package tokenizer implements Hugging Face tokenizer.json tokenizers (plus the optional
// tokenizer_config.json) in pure Go, composed the way the HF `tokenizers` library composes
// its pipeline rather than by model family:
//
//	added tokens split -> normalizer -> pre-tokenizer -> model (BPE) -> post-processor
//	ids -> tokens -> decoder chain -> text
//
// Encoding:
//
//  1. The input is split on added tokens whose `normalized` flag is false (leftmost-longest
//     match, honouring single_word, lstrip and rstrip), then every remaining piece is
//     normalized and split again on the `normalized: true` added tokens (matched against
//     their normalized form), exactly like AddedVocabulary::extract_and_normalize.
//  2. Each remaining piece goes through the pre-tokenizer and every resulting word through
//     the BPE model (merges applied lowest rank first with a priority queue, words cached).
//  3. With addSpecial, the post-processor adds its special tokens.
//
// Supported components:
//
//	normalizers:     Sequence, Prepend, Replace (String/Regex), NFC, NFD, NFKC, NFKD,
//	                 Lowercase, Strip, StripAccents, BertNormalizer
//	pre_tokenizers:  Sequence, ByteLevel, Split (all behaviors, invert), Metaspace, Digits,
//	                 Punctuation, Whitespace, WhitespaceSplit, BertPreTokenizer
//	models:          BPE (byte_fallback, fuse_unk, ignore_merges, continuing_subword_prefix,
//	                 end_of_word_suffix, unk_token; merges as "a b" or ["a","b"])
//	post_processors: TemplateProcessing, ByteLevel, RobertaProcessing, BertProcessing, Sequence
//	decoders:        ByteLevel, ByteFallback, Fuse, Strip, Replace, Metaspace, WordPiece,
//	                 BPEDecoder, Sequence
//
// Anything else is refused at load time with an error wrapping ErrUnsupported that names
// the component, e.g. `tokenizer.json: unsupported model type "Unigram"`. Malformed input
// gives an error wrapping ErrMalformed. No input (text or JSON) makes the package panic.
//
// Regex patterns (Split pre-tokenizer, Replace normalizer/decoder) are compiled with
// github.com/dlclark/regexp2, which supports the look-ahead used by the GPT-2 family
// patterns; the GPT-2, Llama 3 and Qwen 2 patterns have hand-written equivalent matchers
// (checked against regexp2 in the tests) because they dominate encoding time.
//
// tokenizer_config.json, when present, supplies bos/eos/pad/unk token strings,
// add_bos_token/add_eos_token, model_max_length and the raw chat_template. Like
// transformers' LlamaTokenizerFast (and Gemma/CodeLlama), when tokenizer_class is one of
// those Llama-style classes and add_bos_token or add_eos_token is set explicitly, the
// post-processor is replaced by a template "[bos] $A [eos]" built from those flags (missing
// flag: add_bos_token defaults to true, add_eos_token to false). For every other class the
// tokenizer.json post_processor is used as is.
//
// Differences from the HF library that are known and deliberate: truncation and padding
// sections are ignored (Encode returns all ids); invalid UTF-8 in the input is replaced by
// U+FFFD first (Rust strings cannot hold it); an added token's id is the vocabulary id of
// its content when the content is in the model vocabulary and the id written in the file
// otherwise; Metaspace's prepend_scheme "first" treats a piece as first when it starts the
// input (the library tracks original offsets through normalizers; results differ only for
// normalizers that insert text before a Metaspace pre-tokenizer with scheme "first").
//
// TrainBPE learns a GPT-2 style byte-level BPE vocabulary from a corpus and writes it as
// tokenizer.json and tokenizer_config.json; its merges are those of the library's
// BpeTrainer on the same text (checked against it in the tests).
//
// FromGGUF builds the same kind of tokenizer from the tokenizer metadata of a GGUF file
// (GGUFVocab), as llama.cpp runs it: "gpt2" vocabularies are byte-level BPE with the split
// rules named by tokenizer.ggml.pre (each name mapped to its model family's tokenizer.json
// patterns) and merge ranks; "llama" vocabularies are SentencePiece BPE, where adjacent
// pieces merge by token score and characters without a piece become <0xNN> byte tokens.
// Control, unknown and user-defined tokens are added tokens; BOS/EOS, add_bos/add_eos and
// the chat template come from the metadata. On the shared goldens the ids equal llama.cpp's
// and the tokenizer.json twins'. Known differences from llama.cpp: added tokens are matched
// leftmost-longest (llama.cpp: longest token first over the whole text), the
// clean_up_tokenization_spaces decoding step and end-of-generation token lists are not
// implemented, and "gpt2" vocabularies get no default BOS/EOS ids (llama.cpp assumes 11).
//
// StreamDecoder turns ids into text incrementally, emitting only complete UTF-8 text, such
// that the concatenation of everything it returns equals Decode of all the ids.
package tokenizer

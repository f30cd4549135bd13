// Writes ../golden/synth.jsonl: goldens for synthetic tokenizers that exercise components
// the real vocabularies do not use. Each variant takes a base tokenizer.json from the
// shared folder (stories260K: Metaspace-style BPE with byte fallback; tiny-llama: GPT-2
// byte-level BPE) and overrides top-level sections and model fields. The Go test
// (TestSynthGolden) rebuilds the same JSON with the same rule: top-level keys of
// "override" replace the base's, "model" keys are merged into the base model, and
// "added_tokens" entries are appended (ids after the base vocabulary).
// Run after gen.mjs's npm install: node model/tokenizer/testdata/gen/synth.mjs
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../../../..');
const cache = process.env.ROE_CACHE || path.join(repo, '.cache');
const shared = process.env.ROE_SHARED || path.resolve(repo, '../shared');
const require = createRequire(path.join(cache, 'npm', 'node_modules', 'x.js'));
const { Tokenizer } = require('tokenizers');

const bases = {
  stories: path.join(shared, 'data/models/stories260K-hf/tokenizer.json'),
  tiny: path.join(shared, 'golden/tiny-llama/tokenizer.json'),
};
const corpus = fs.readFileSync(path.resolve(here, '../corpus.jsonl'), 'utf8')
  .split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l).text);
// the synthetic goldens use a subset of the corpus: every 4th of the first 440 strings
export const subset = corpus.map((t, i) => [t, i]).filter(([, i]) => i < 440 && i % 4 === 0);

const S = (s) => ({ String: s });
const R = (s) => ({ Regex: s });
const llamaDec = { type: 'Sequence', decoders: [{ type: 'Replace', pattern: S('▁'), content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] };
const bfDec = { type: 'Sequence', decoders: [{ type: 'ByteFallback' }, { type: 'Fuse' }] };
const split = (pattern, behavior, invert = false) => ({ type: 'Split', pattern, behavior, invert });
const ms = (prepend_scheme, split = true) => ({ type: 'Metaspace', replacement: '▁', prepend_scheme, split });

const variants = [];
const V = (name, base, override) => variants.push({ name, base, override });
const noNorm = { normalizer: null };
for (const b of ['Removed', 'Isolated', 'MergedWithPrevious', 'MergedWithNext', 'Contiguous']) {
  V(`split-string-${b}`, 'stories', { ...noNorm, pre_tokenizer: split(S(' '), b), decoder: bfDec });
  V(`split-regex-${b}-invert`, 'stories', { ...noNorm, pre_tokenizer: split(R('\\p{L}+|\\d'), b, true), decoder: bfDec });
  V(`punctuation-${b}`, 'stories', { ...noNorm, pre_tokenizer: { type: 'Punctuation', behavior: b }, decoder: bfDec });
}
V('split-regex-empty-matches', 'stories', { ...noNorm, pre_tokenizer: split(R('x*'), 'Isolated'), decoder: bfDec });
V('whitespace', 'stories', { ...noNorm, pre_tokenizer: { type: 'Whitespace' }, decoder: bfDec });
V('whitespacesplit', 'stories', { ...noNorm, pre_tokenizer: { type: 'WhitespaceSplit' }, decoder: bfDec });
V('bert', 'stories', { normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true }, pre_tokenizer: { type: 'BertPreTokenizer' }, decoder: { type: 'WordPiece', prefix: '##', cleanup: true }, post_processor: { type: 'BertProcessing', sep: ['</s>', 2], cls: ['<s>', 1] } });
V('digits-individual', 'stories', { ...noNorm, pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true }, ms('always')] }, decoder: { type: 'Sequence', decoders: [{ type: 'ByteFallback' }, { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true }] } });
V('digits-contiguous', 'stories', { ...noNorm, pre_tokenizer: { type: 'Digits', individual_digits: false }, decoder: bfDec });
for (const sch of ['always', 'first', 'never']) {
  V(`metaspace-${sch}`, 'stories', { ...noNorm, pre_tokenizer: ms(sch), decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: sch, split: true } });
}
V('metaspace-nosplit', 'stories', { ...noNorm, pre_tokenizer: ms('always', false), decoder: llamaDec });
V('norm-nfkc-lower-strip', 'stories', { normalizer: { type: 'Sequence', normalizers: [{ type: 'NFKC' }, { type: 'Lowercase' }, { type: 'Strip', strip_left: true, strip_right: true }, { type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: S(' '), content: '▁' }] }, decoder: llamaDec });
V('norm-nfd-stripaccents', 'stories', { normalizer: { type: 'Sequence', normalizers: [{ type: 'NFD' }, { type: 'StripAccents' }, { type: 'Replace', pattern: R('\\s+'), content: '▁' }] }, decoder: llamaDec });
V('norm-nfkd-rstrip', 'stories', { normalizer: { type: 'Sequence', normalizers: [{ type: 'NFKD' }, { type: 'Strip', strip_left: false, strip_right: true }] }, pre_tokenizer: ms('first'), decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: true } });
V('model-unk-nofuse', 'stories', { model: { byte_fallback: false, fuse_unk: false }, decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: S('▁'), content: ' ' }, { type: 'Strip', content: ' ', start: 0, stop: 1 }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] } });
V('model-unk-fuse-ignore-merges', 'stories', { model: { byte_fallback: false, fuse_unk: true, ignore_merges: true } });
V('added-flags', 'stories', {
  normalizer: { type: 'Sequence', normalizers: [{ type: 'Lowercase' }, { type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: S(' '), content: '▁' }] },
  added_tokens: [
    { content: 'hello', single_word: true, lstrip: false, rstrip: false, normalized: false, special: false },
    { content: '<mask>', single_word: false, lstrip: true, rstrip: true, normalized: false, special: true },
    { content: 'world', single_word: false, lstrip: false, rstrip: false, normalized: true, special: false },
    { content: '[X]', single_word: true, lstrip: true, rstrip: false, normalized: false, special: true },
    { content: '<s>x', single_word: false, lstrip: false, rstrip: false, normalized: false, special: false },
  ],
});
V('post-roberta', 'stories', { post_processor: { type: 'RobertaProcessing', sep: ['</s>', 2], cls: ['<s>', 1], trim_offsets: true, add_prefix_space: true } });
V('post-sequence-template', 'tiny', { post_processor: { type: 'Sequence', processors: [{ type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true }, { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<|end_of_text|>', type_id: 0 } }], pair: [], special_tokens: { '<|begin_of_text|>': { id: '<|begin_of_text|>', ids: [317], tokens: ['<|begin_of_text|>'] }, '<|end_of_text|>': { id: '<|end_of_text|>', ids: [318], tokens: ['<|end_of_text|>'] } } }] } });
V('bytelevel-prefix-noregex', 'tiny', { pre_tokenizer: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: false }, decoder: { type: 'Sequence', decoders: [{ type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] } });
V('bytelevel-llama3-split', 'tiny', { normalizer: { type: 'NFC' }, pre_tokenizer: { type: 'Sequence', pretokenizers: [split(R("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"), 'Isolated'), { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false }] } });
V('bytelevel-decoder-replace-regex', 'tiny', { decoder: { type: 'Sequence', decoders: [{ type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true }, { type: 'Replace', pattern: R('o+'), content: '0' }] } });
V('bpe-decoder', 'tiny', { decoder: { type: 'BPEDecoder', suffix: 'e' } });

export function build(v) {
  const base = JSON.parse(fs.readFileSync(bases[v.base], 'utf8'));
  const o = v.override;
  for (const [k, val] of Object.entries(o)) {
    if (k === 'model') Object.assign(base.model, val);
    else if (k === 'added_tokens') {
      let next = Math.max(...Object.values(base.model.vocab), ...base.added_tokens.map((t) => t.id)) + 1;
      for (const t of val) base.added_tokens.push({ id: next++, ...t });
    } else base[k] = val;
  }
  return base;
}

const lines = [];
let n = 0;
for (const v of variants) {
  if (!fs.existsSync(bases[v.base])) { console.error(`skip ${v.name}: base missing`); continue; }
  const json = JSON.stringify(build(v));
  let tk;
  try { tk = Tokenizer.fromString(json); } catch (e) { console.error(`${v.name}: ${e.message}`); process.exit(1); }
  const results = [];
  for (const [text] of subset) {
    const plain = (await tk.encode(text, null, { addSpecialTokens: false })).getIds();
    const special = (await tk.encode(text, null, { addSpecialTokens: true })).getIds();
    const r = { ids: plain };
    // encode(text, true) == pre + ids + post when possible (as in gen.mjs)
    let ok = false;
    for (let p = 0; p + plain.length <= special.length && !ok; p++) {
      if (special.slice(p, p + plain.length).every((x, k) => x === plain[k])) {
        const pre = special.slice(0, p), post = special.slice(p + plain.length);
        if (pre.length) r.pre = pre;
        if (post.length) r.post = post;
        ok = true;
      }
    }
    if (!ok) r.ids_special = special;
    const dec = await tk.decode(special, false);
    const decSkip = await tk.decode(special, true);
    if (dec !== text) r.dec = dec;
    if (decSkip !== text) r.dec_skip = decSkip;
    results.push(r);
    n++;
  }
  lines.push(JSON.stringify({ name: v.name, base: v.base, override: v.override, results }));
}
fs.writeFileSync(path.resolve(here, '../golden/synth.jsonl'), lines.join('\n') + '\n');
console.log(`synth: ${variants.length} variants x ${subset.length} strings (${n} cases)`);
